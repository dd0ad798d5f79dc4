"""Fault injection: script() and fail_recipient()."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360, FakeResponse

if TYPE_CHECKING:
    from tests.testing.conftest import Wire


async def test_scripted_responses_in_order(wire: Wire, fake: FakeDialog360) -> None:
    fake.script(
        "POST",
        "/messages",
        FakeResponse(status=429, json={"error": {"code": 130429}}, headers={"Retry-After": "2"}),
        FakeResponse(status=500, body=b"<html>oops</html>"),
        FakeResponse(status=503),
    )
    async with wire.session.post(
        fake.url + "/messages", json=wire.location(), headers={"D360-API-KEY": wire.key}
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"
        assert await response.json() == {"error": {"code": 130429}}
    assert await wire.call("POST", "/messages", json=wire.location()) == (500, b"<html>oops</html>")
    assert await wire.call("POST", "/messages", json=wire.location()) == (503, None)
    # the script is used up: back to normal handling
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200
    assert fake.sends["15550001"] == 1
    assert len(fake.requests) == 4


async def test_script_only_matches_its_route(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("post", "/messages?ignored=1", FakeResponse(status=502))
    assert (await wire.call("GET", "/block_users"))[0] == 200
    assert (await wire.call("POST", "/v1/messages", json=wire.location(cloud=False)))[0] == 201
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 502


async def test_script_patterns_and_any_method(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("POST", "/v1/contacts/{phone}/block", FakeResponse(status=500))
    fake.script("*", "/v1/configs/webhook", FakeResponse(status=200, json={"ok": True}))
    assert (await wire.call("POST", "/v1/contacts/+15550001/block"))[0] == 500
    assert (await wire.call("POST", "/v1/contacts/+15550001/unblock"))[0] == 200
    assert await wire.call("PUT", "/v1/configs/webhook") == (200, {"ok": True})


async def test_script_extends_existing_queue(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("GET", "/block_users", FakeResponse(status=500))
    fake.script("GET", "/block_users", FakeResponse(status=502))
    statuses = [(await wire.call("GET", "/block_users"))[0] for _ in range(3)]
    assert statuses == [500, 502, 200]


async def test_scripts_bypass_auth(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(status=200, json={"scripted": True}))
    assert await wire.call("POST", "/messages", key=None) == (200, {"scripted": True})


async def test_close_after_read(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(close=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await wire.call("POST", "/messages", json=wire.location())
    assert len(fake.requests) == 1
    assert fake.requests[0].json == wire.location()
    assert not fake.sends
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200


async def test_process_then_fail(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(status=500, process=True))
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 500
    assert fake.sends == {"15550001": 1}  # processed although the client saw an error


async def test_process_then_close(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    fake.script("POST", "/block_users", FakeResponse(process=True, close=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await wire.call("POST", "/block_users", json=wire.block("15550001"))
    assert fake.blocklist(wire.key) == ["15550001"]


async def test_redirect_target_sees_nothing(wire: Wire, fake: FakeDialog360) -> None:
    async with FakeDialog360() as target:
        fake.script("POST", "/messages", FakeResponse(redirect_to=target.url + "/messages"))
        async with wire.session.post(
            fake.url + "/messages",
            json=wire.location(),
            headers={"D360-API-KEY": wire.key},
            allow_redirects=False,
        ) as response:
            assert response.status == 307
            assert response.headers["Location"] == target.url + "/messages"
        assert target.requests == []
        assert not fake.sends


async def test_redirect_keeps_3xx_status(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("GET", "/block_users", FakeResponse(status=301, redirect_to="/elsewhere"))
    assert await wire.call("GET", "/block_users") == (301, None)


async def test_delay_and_max_in_flight(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", *[FakeResponse(delay=0.2, process=True)] * 10)
    assert fake.in_flight == 0
    results = await asyncio.wait_for(
        asyncio.gather(
            *(wire.call("POST", "/messages", json=wire.location(f"1555000{i}")) for i in range(10))
        ),
        timeout=5,
    )
    assert [status for status, _ in results] == [200] * 10
    assert fake.max_in_flight == 10
    assert fake.in_flight == 0
    assert sum(fake.sends.values()) == 10


async def test_delay_actually_waits(wire: Wire, fake: FakeDialog360) -> None:
    fake.script("GET", "/block_users", FakeResponse(delay=0.3))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(wire.call("GET", "/block_users"), timeout=0.05)
    for _ in range(100):  # the server-side handler is still sleeping for a moment
        if fake.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert fake.in_flight == 0


async def test_fail_recipient(wire: Wire, fake: FakeDialog360) -> None:
    fake.fail_recipient("+1 555 0001", times=2)
    for _ in range(2):
        status, body = await wire.call("POST", "/messages", json=wire.location("15550001"))
        assert status == 400
        assert body["error"]["code"] == 131026
        assert body["error"]["message"] == "(#131026) Message undeliverable"
    assert (await wire.call("POST", "/messages", json=wire.location("15550001")))[0] == 200
    assert (await wire.call("POST", "/messages", json=wire.location("15550002")))[0] == 200
    assert fake.sends == {"15550001": 1, "15550002": 1}


async def test_fail_recipient_forever_custom(wire: Wire, fake: FakeDialog360) -> None:
    fake.fail_recipient("15550001", code=131048, status=400, message="Spam rate limit hit")
    for _ in range(3):
        status, body = await wire.call("POST", "/v1/messages", json=wire.location(cloud=False))
        assert status == 400
        assert body["errors"][0] == {
            "code": 131048,
            "title": "Spam rate limit hit",
            "details": "Spam rate limit hit",
        }
    assert not fake.sends


async def test_reset_clears_faults_and_records(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    await wire.call("POST", "/block_users", json=wire.block("15550001"))
    await wire.call("POST", "/messages", json=wire.location())
    fake.script("POST", "/messages", FakeResponse(status=500))
    fake.fail_recipient("15550001")
    fake.reset()
    assert fake.requests == []
    assert not fake.sends
    assert fake.max_in_flight == 0
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200
    assert fake.blocklist(wire.key) == ["15550001"]  # state survives a plain reset
    fake.reset(state=True)
    assert fake.blocklist(wire.key) == []
    assert fake.engage_all  # config survives
