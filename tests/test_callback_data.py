"""``callback_data``: Cloud sends carry it as ``biz_opaque_callback_data``; On-Premise refuses it.

webhooks-and-statuses.md §3: a top-level string of the send body, echoed in the message's status
webhooks; capped here at 256 bytes UTF-8 (the stricter of the two documented limits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from dialog360_async import (
    Contact,
    Dialog360Client,
    Location,
    LocationMessage,
    Name,
    OnPremiseClient,
    RetryPolicy,
    SentMessage,
    ValidationError,
)
from dialog360_async._middleware import RetryMiddleware
from dialog360_async.testing import FakeDialog360
from tests.conftest import API_KEY

TO = "+16505551234"
HQ = Location(latitude=52.52, longitude=13.40)
CARD = Contact(name=Name(formatted_name="Ada Lovelace", first_name="Ada"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeDialog360]:
    async with FakeDialog360(throughput=None, engage_all=True) as server:
        yield server


def body(fake: FakeDialog360) -> dict[str, Any]:
    sent = fake.requests[-1].json
    assert isinstance(sent, dict)
    return sent


async def test_every_cloud_send_method_puts_it_on_the_wire(fake: FakeDialog360) -> None:
    async with Dialog360Client(API_KEY, base_url=fake.url, rate_limit=None) as client:
        await client.send(LocationMessage(to=TO, location=HQ), callback_data="campaign=7;key=a")
        assert body(fake)["biz_opaque_callback_data"] == "campaign=7;key=a"
        await client.send_location(TO, HQ, callback_data="loc")
        assert body(fake)["biz_opaque_callback_data"] == "loc"
        assert body(fake)["type"] == "location"
        await client.send_contacts(TO, CARD, callback_data="cards ✓")
        assert body(fake)["biz_opaque_callback_data"] == "cards ✓"
        assert body(fake)["type"] == "contacts"
        await client.send_location(TO, HQ)
        assert "biz_opaque_callback_data" not in body(fake)  # None: no field at all
    assert fake.stats()["sends"]["total"] == 4


async def test_the_bulk_senders_call_takes_it_too(fake: FakeDialog360) -> None:
    async with Dialog360Client(API_KEY, base_url=fake.url, rate_limit=None) as client:
        middleware = RetryMiddleware(
            RetryPolicy(), idempotent=False, budget=client.retry_budget, limiter=None
        )
        message = LocationMessage(to=TO, location=HQ)
        sent = await client._deliver(message, middleware, callback_data="tag-1")
        assert sent.message_id
        assert body(fake)["biz_opaque_callback_data"] == "tag-1"
        await client._deliver(message, middleware)  # the call as the bulk sender makes it
        assert "biz_opaque_callback_data" not in body(fake)
        await client._deliver(message)
        assert "biz_opaque_callback_data" not in body(fake)


@pytest.mark.parametrize(
    "value",
    [
        "x" * 256,  # 256 bytes
        "€" * 85,  # 255 bytes: 3 each
        "😀" * 64,  # 256 bytes: 4 each
        "a" * 253 + "é" + "b",  # 256 bytes, with one 2-byte character
    ],
)
async def test_up_to_256_bytes_are_sent(fake: FakeDialog360, value: str) -> None:
    async with Dialog360Client(API_KEY, base_url=fake.url, rate_limit=None) as client:
        await client.send_location(TO, HQ, callback_data=value)
    assert body(fake)["biz_opaque_callback_data"] == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("x" * 257, "got 257"),
        ("€" * 100, "got 300"),  # 100 characters, 300 bytes: counted in bytes, not characters
        ("😀" * 65, "got 260"),
        ("a" * 255 + "é", "got 257"),
        ("", "got 0"),
        ("ok\ud800", "surrogate"),
        (b"bytes", "string"),
        (42, "string"),
    ],
)
async def test_refused_before_any_request(fake: FakeDialog360, value: Any, why: str) -> None:
    async with Dialog360Client(API_KEY, base_url=fake.url, rate_limit=None) as client:
        sends: list[Callable[[], Awaitable[SentMessage]]] = [
            lambda: client.send_location(TO, HQ, callback_data=value),
            lambda: client.send_contacts(TO, [CARD], callback_data=value),
            lambda: client.send(LocationMessage(to=TO, location=HQ), callback_data=value),
        ]
        for send in sends:
            with pytest.raises(ValidationError, match=why) as info:
                await send()
            assert info.value.field == "callback_data"
    assert fake.requests == []


@pytest.mark.parametrize("value", ["tag", "x" * 300])
async def test_on_premise_refuses_it(fake: FakeDialog360, value: str) -> None:
    async with OnPremiseClient(API_KEY, base_url=fake.url, rate_limit=None) as client:
        with pytest.raises(ValidationError, match="On-Premise") as info:
            await client.send_location(TO, HQ, callback_data=value)
        assert info.value.field == "callback_data"
        with pytest.raises(ValidationError, match="On-Premise"):
            await client.send_contacts(TO, CARD, callback_data=value)
        with pytest.raises(ValidationError, match="On-Premise"):
            await client.send(LocationMessage(to=TO, location=HQ), callback_data=value)
        assert fake.requests == []
        await client.send_location(TO, HQ)  # without it, On-Premise sends as ever
    assert fake.requests[-1].path == "/v1/messages"
    assert "biz_opaque_callback_data" not in body(fake)


async def test_it_comes_back_in_the_status_webhooks(fake: FakeDialog360) -> None:
    """End to end on loopback: set the webhook, send with a tag, read the tag in statuses."""
    received: list[tuple[str | None, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("Authorization"), await request.json()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Dialog360Client(API_KEY, base_url=fake.url, rate_limit=None) as client:
            await client.set_webhook(
                f"http://127.0.0.1:{port}/hook", headers={"Authorization": "hook-s3cret"}
            )
            sent = await client.send_location(TO, HQ, callback_data="campaign=7;key=42")
        await fake.webhooks_idle()
    finally:
        await runner.cleanup()
    statuses = [
        status
        for _, payload in received
        for entry in payload["entry"]
        for change in entry["changes"]
        for status in change["value"].get("statuses", ())
    ]
    assert {s["status"] for s in statuses} >= {"sent", "delivered"}
    assert all(s["id"] == sent.message_id for s in statuses)
    assert all(s["biz_opaque_callback_data"] == "campaign=7;key=42" for s in statuses)
    assert {auth for auth, _ in received} == {"hook-s3cret"}  # the headers set_webhook set
