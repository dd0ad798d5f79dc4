"""The API key never shows: not in reprs, strs, logs, errors, recorded requests or pickles;
plain http only for loopback; redirects never followed."""

from __future__ import annotations

import logging
import pickle
import socket

import aiohttp
import attrs
import pytest
from aiohttp import web

from dialog360_async import (
    APIError,
    Dialog360Client,
    Dialog360Error,
    Location,
    OnPremiseClient,
    PartnerClient,
    RetryPolicy,
    Secret,
    ValidationError,
)
from dialog360_async._converter import unstructure
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY, PARTNER_KEY

HQ = Location(latitude=1, longitude=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def texts_of(error: BaseException) -> list[str]:
    out = [str(error), repr(error), repr(error.args), repr(vars(error))]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            out += texts_of(linked)
    return out


async def test_key_never_in_errors_logs_or_reprs(
    fake: FakeDialog360, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script("POST", "/messages", FakeResponse(status=400, json={"error": {"code": 131026}}))
    fake.script("POST", "/messages", FakeResponse(status=429, headers={"Retry-After": "1"}))
    fake.script("POST", "/messages", FakeResponse(status=500))
    fake.script("POST", "/messages", FakeResponse(close=True))
    # aiohttp itself retries an idempotent request once on a dropped keep-alive connection.
    fake.script("GET", "/block_users", FakeResponse(close=True), FakeResponse(close=True))
    fake.script("POST", "/messages", FakeResponse(redirect_to="http://127.0.0.2:1/steal"))
    errors: list[BaseException] = []
    clients = [
        Dialog360Client(API_KEY, base_url=fake.url, retry=None),
        OnPremiseClient(API_KEY, base_url=fake.url, retry=None),
        PartnerClient(partner_id="examplePA", api_key=PARTNER_KEY, base_url=fake.partner_url),
        Dialog360Client(API_KEY, base_url=f"http://127.0.0.1:{free_port()}", retry=None),
    ]
    cloud, onprem, partner, dead = clients
    attempts = [
        *(cloud.send_location("+16505551234", HQ) for _ in range(4)),
        cloud.list_blocked_users().__anext__(),
        cloud.send_location("+16505551234", HQ),
        onprem.report_user("+16505551234"),
        partner.block_users("nope", "+16505551234"),
        dead.send_location("+16505551234", HQ),
        dead.list_blocked_users().__anext__(),
    ]
    opted_in = Dialog360Client(
        API_KEY,
        base_url=fake.url,
        retry=RetryPolicy(max_attempts=2, base_delay=0, retry_ambiguous=True),
    )
    clients.append(opted_in)
    fake.script("POST", "/messages", FakeResponse(close=True), FakeResponse(status=400))
    attempts.append(opted_in.send_location("+16505551234", HQ))
    for attempt in attempts:
        try:
            await attempt
        except Dialog360Error as exc:
            errors.append(exc)
    for client in clients:
        await client.close()
    assert len(errors) == len(attempts)
    assert {type(e).__name__ for e in errors} >= {
        "APIError",
        "RateLimitError",
        "DeliveryUnknownError",
        "TransportError",
        "NotEngagedError",
    }
    haystack = [t for e in errors for t in texts_of(e)]
    haystack += [repr(c) for c in clients] + [str(c) for c in clients]
    haystack += [r.getMessage() for r in caplog.records] + [
        repr(r.__dict__) for r in caplog.records
    ]
    haystack += [repr(r) for r in fake.requests]
    assert any("POST /messages" in t for t in haystack)  # the haystack is real
    for secret in (API_KEY, PARTNER_KEY):
        assert not [t for t in haystack if secret in t]


def test_secret_wrapper() -> None:
    s = Secret(API_KEY)
    assert API_KEY not in repr(s) and API_KEY not in str(s) and API_KEY not in f"{s}"
    assert s.reveal() == API_KEY
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_client_has_no_plain_key_attribute() -> None:
    client = Dialog360Client(API_KEY)
    assert API_KEY not in repr(client)
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_models_and_results_never_hold_keys() -> None:
    # Nothing the converter serializes is built from a key: no model field takes one.
    for cls in (Location,):
        assert "key" not in {a.name for a in attrs.fields(cls)}
    assert API_KEY not in repr(unstructure(HQ))


@pytest.mark.parametrize(
    "url",
    [
        "http://waba-v2.360dialog.io",
        "http://10.0.0.1",
        "ftp://127.0.0.1",
        "127.0.0.1:80",
        "",
        "http://192.168.1.10:8080",
    ],
)
def test_plain_http_only_for_loopback(url: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        Dialog360Client(API_KEY, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8360",
        "http://localhost:1",
        "http://[::1]:9",
        "http://127.9.9.9",
        "https://waba-sandbox.360dialog.io/",
    ],
)
def test_loopback_and_https_accepted(url: str) -> None:
    assert Dialog360Client(API_KEY, base_url=url).base_url == url.rstrip("/")


async def test_redirect_not_followed_and_target_sees_nothing(fake: FakeDialog360) -> None:
    hits: list[web.Request] = []

    async def steal(request: web.Request) -> web.Response:
        hits.append(request)
        return web.json_response({"messages": [{"id": "wamid.stolen"}]})

    app = web.Application()
    app.router.add_route("*", "/steal", steal)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for status in (302, 307, 308):
            fake.script(
                "POST",
                "/messages",
                FakeResponse(status=status, headers={"Location": f"http://127.0.0.1:{port}/steal"}),
            )
        async with Dialog360Client(API_KEY, base_url=fake.url) as client:
            for _ in range(3):
                with pytest.raises(APIError, match="redirect not followed") as info:
                    await client.send_location("+16505551234", HQ)
                assert 300 <= info.value.status < 400
    finally:
        await runner.cleanup()
    assert hits == []


async def test_external_session_is_left_open(fake: FakeDialog360) -> None:
    async with aiohttp.ClientSession() as session:
        async with Dialog360Client(API_KEY, base_url=fake.url, session=session) as client:
            await client.send_location("+16505551234", HQ)
        assert not session.closed
        assert len(fake.requests) == 1
