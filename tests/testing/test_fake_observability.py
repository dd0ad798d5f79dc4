"""Recorded requests, redaction, counters and lifecycle."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360, RecordedRequest

if TYPE_CHECKING:
    from tests.testing.conftest import Wire


async def test_recorded_request_fields(wire: Wire, fake: FakeDialog360) -> None:
    await wire.call("POST", "/messages", json=wire.location(), params={"debug": "1"})
    [request] = fake.requests
    assert isinstance(request, RecordedRequest)
    assert request.method == "POST"
    assert request.path == "/messages"
    assert request.query == {"debug": "1"}
    assert request.json == wire.location()
    assert request.headers["Content-Type"] == "application/json"
    assert request.channel is not None


async def test_secret_headers_are_redacted(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH", api_key=wire.key)
    await wire.call("GET", "/block_users")
    await wire.partner("GET", "exampleCH")
    await wire.call(
        "GET",
        "/partners/examplePA/channels/exampleCH/block_users",
        key=None,
        headers={"Authorization": "Bearer very-secret-token"},
        base=fake.partner_url,
    )
    cloud, partner, bearer = fake.requests
    assert cloud.headers["d360-api-key"] == "***"
    assert partner.headers["x-api-key"] == "***"
    assert bearer.headers["authorization"] == "***"
    # the Cloud key's channel is the partner channel: same opaque label
    assert cloud.channel == partner.channel
    dump = repr(fake.requests) + repr(fake) + str([vars(fake)[k] for k in ("sends", "requests")])
    for secret in (wire.key, wire.partner_key, "very-secret-token"):
        assert secret not in dump
    assert wire.key not in (cloud.channel or "")


async def test_channel_labels_distinguish_keys(wire: Wire, fake: FakeDialog360) -> None:
    await wire.call("GET", "/block_users")
    await wire.call("GET", "/block_users", key="k2")
    await wire.call("GET", "/block_users")
    await wire.call("GET", "/block_users", key=None)
    first, second, third, anonymous = (r.channel for r in fake.requests)
    assert first == third != second
    assert anonymous is None


async def test_record_requests_off(wire: Wire, fake: FakeDialog360) -> None:
    fake.record_requests = False
    await wire.call("POST", "/messages", json=wire.location())
    assert fake.requests == []
    assert fake.sends["15550001"] == 1


async def test_sends_and_duplicates(wire: Wire, fake: FakeDialog360) -> None:
    await wire.call("POST", "/messages", json=wire.location("+1 555 0001"))
    await wire.call("POST", "/messages", json=wire.location("15550001"))
    await wire.call("POST", "/v1/messages", json=wire.location("15550001", cloud=False))
    await wire.call("POST", "/messages", json=wire.location("15550002"))
    await wire.call("POST", "/messages", json={"to": "15550003"})  # rejected: not counted
    assert fake.sends == {"15550001": 3, "15550002": 1}
    assert fake.duplicates() == {"15550001": 3}


async def test_lifecycle(session: aiohttp.ClientSession) -> None:
    fake = FakeDialog360()
    with pytest.raises(RuntimeError):
        _ = fake.url
    assert "not started" in repr(fake)
    await fake.start()
    try:
        with pytest.raises(RuntimeError):
            await fake.start()
        assert fake.url.startswith("http://127.0.0.1:")
        assert fake.partner_url == fake.url + "/api/v2"
        async with session.get(fake.url + "/block_users", headers={"D360-API-KEY": "k"}) as r:
            assert r.status == 200
    finally:
        await fake.close()
    await fake.close()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(fake.url + "/block_users"):
            pass


async def test_close_with_request_in_progress(session: aiohttp.ClientSession) -> None:
    from dialog360_async.testing import FakeResponse

    fake = FakeDialog360()
    await fake.start()
    fake.script("GET", "/block_users", FakeResponse(delay=5))
    pending = asyncio.ensure_future(session.get(fake.url + "/block_users"))
    for _ in range(100):
        if fake.in_flight:
            break
        await asyncio.sleep(0.01)
    await asyncio.wait_for(fake.close(), timeout=3)
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(pending, timeout=3)


async def test_unknown_route_is_404(wire: Wire, fake: FakeDialog360) -> None:
    assert (await wire.call("GET", "/v2/nothing"))[0] == 404
    assert fake.requests[0].path == "/v2/nothing"
