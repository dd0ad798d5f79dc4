"""The fake's own routes: ``GET /_fake/stats``, ``GET /_fake/requests``, ``POST /_fake/reset``,
and the bounded recording behind them (in-process; the standalone server is in
test_fake_standalone.py)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360, FakeResponse

if TYPE_CHECKING:
    from tests.testing.conftest import ManualClock, Wire

META_PATH = "/v21.0/106540352242922/messages"


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def stats(wire: Wire, query: str = "") -> Any:
    status, text = await _get(wire.session, f"{wire.fake.url}/_fake/stats{query}")
    assert status == 200
    return json.loads(text)


async def test_stats_count_requests_sends_and_duplicates(wire: Wire, fake: FakeDialog360) -> None:
    empty = await stats(wire)
    assert empty["requests"] == {"total": 0, "by_route": {}, "unmatched": 0}
    assert empty["sends"] == {"total": 0, "recipients": 0, "duplicate_sends": 0, "duplicates": {}}
    for to in ("+1 555 0001", "15550001", "15550001", "15550002"):
        assert (await wire.call("POST", "/messages", json=wire.location(to)))[0] == 200
    assert (await wire.call("POST", "/v1/messages", json=wire.location(cloud=False)))[0] == 201
    await wire.call("POST", "/v1/contacts/15550009/block", json={})  # 400: not engaged
    await wire.call("GET", "/block_users")
    await wire.call("POST", "/messages", json={"to": "15550003"})  # 400: not counted as a send
    body = await stats(wire)
    assert body["requests"] == {
        "total": 8,
        "by_route": {
            "GET /block_users": 1,
            "POST /messages": 5,
            "POST /v1/contacts/{phone}/block": 1,
            "POST /v1/messages": 1,
        },
        "unmatched": 0,
    }
    assert body["responses"] == {"by_status": {"200": 5, "201": 1, "400": 2}, "closed": 0}
    assert body["sends"] == {
        "total": 5,
        "recipients": 2,
        "duplicate_sends": 3,
        "duplicates": {"15550001": 4},
    }
    assert body["throttled"] == {"total": 0, "by_reason": {}}
    assert body["channels"] == 1
    assert body["recorded"] == {"enabled": True, "kept": 8, "limit": None, "dropped": 0}
    # The HTTP body is exactly what the method returns.
    assert body == fake.stats()
    per_recipient = await stats(wire, "?by_recipient=1")
    assert per_recipient["sends"]["by_recipient"] == {"15550001": 4, "15550002": 1}
    assert "by_recipient" not in body["sends"]


async def test_stats_count_each_kind_of_throttling(
    wire: Wire, fake: FakeDialog360, clock: ManualClock
) -> None:
    fake.throughput = 1  # a burst of one per channel, the clock never moves
    assert (await wire.call("POST", "/messages", json=wire.location("15550001")))[0] == 200
    status, body = await wire.call("POST", "/messages", json=wire.location("15550002"))
    assert (status, body["error"]["code"]) == (429, 130429)
    fake.throughput = None
    fake.pair_rate_limit = 60
    assert (await wire.call("POST", "/messages", json=wire.location("15550003")))[0] == 200
    status, body = await wire.call("POST", "/messages", json=wire.location("15550003"))
    assert (status, body["error"]["code"]) == (400, 131056)
    fake.gateway_limit = (1, 60)
    assert (await wire.call("GET", "/block_users"))[0] == 200
    assert (await wire.call("GET", "/block_users"))[0] == 400
    clock.advance(61)
    assert (await wire.call("GET", "/block_users"))[0] == 200
    body = await stats(wire)
    assert body["throttled"] == {
        "total": 3,
        "by_reason": {"130429": 1, "131056": 1, "gateway": 1},
    }
    assert body["responses"]["by_status"] == {"200": 4, "400": 2, "429": 1}
    assert body["sends"]["total"] == 2


async def test_unmatched_closed_and_in_flight(wire: Wire, fake: FakeDialog360) -> None:
    assert (await wire.call("GET", "/v2/nothing"))[0] == 404
    assert (await wire.call("PUT", "/messages"))[0] == 405
    fake.script("POST", "/messages", FakeResponse(close=True))
    with pytest.raises(aiohttp.ClientError):
        await wire.call("POST", "/messages", json=wire.location())
    fake.script("GET", "/block_users", *[FakeResponse(delay=0.2)] * 4)
    await asyncio.wait_for(
        asyncio.gather(*(wire.call("GET", "/block_users") for _ in range(4))), timeout=5
    )
    body = await stats(wire)
    assert body["requests"]["unmatched"] == 2
    assert body["requests"]["by_route"] == {"GET /block_users": 4, "POST /messages": 1}
    assert body["requests"]["total"] == 7
    assert body["responses"] == {"by_status": {"200": 4, "404": 1, "405": 1}, "closed": 1}
    assert body["max_in_flight"] == fake.max_in_flight == 4
    assert body["in_flight"] == 0


async def test_control_routes_are_neither_counted_nor_throttled(
    wire: Wire, fake: FakeDialog360
) -> None:
    fake.gateway_limit = (1, 60)
    fake.latency = 5.0  # API requests would wait; the control routes do not
    fake.script("*", "/_fake/stats", FakeResponse(status=500))
    for _ in range(3):
        body = await asyncio.wait_for(stats(wire), timeout=2)
    status, text = await _get(wire.session, fake.url + "/_fake/requests")
    assert (status, json.loads(text)) == (200, [])
    assert body["requests"]["total"] == 0
    assert body["recorded"]["kept"] == 0
    assert fake.requests == []


async def test_record_limit_keeps_the_newest(wire: Wire, clock: ManualClock) -> None:
    async with FakeDialog360(record_limit=3, throughput=None, clock=clock) as fake:
        wire.fake = fake
        for n in range(5):
            await wire.call("POST", "/messages", json=wire.location(f"1555000{n}"))
        assert [r.json["to"] for r in fake.requests] == ["15550002", "15550003", "15550004"]
        body = await stats(wire)
        assert body["recorded"] == {"enabled": True, "kept": 3, "limit": 3, "dropped": 2}
        assert body["requests"]["total"] == 5  # the counters count every request
        assert body["sends"]["total"] == 5
        fake.record_limit = 1  # a plain attribute: takes effect at the next request
        await wire.call("GET", "/block_users")
        assert [r.path for r in fake.requests] == ["/block_users"]
        assert (await stats(wire))["recorded"]["dropped"] == 5
        fake.record_requests = False
        await wire.call("POST", "/messages", json=wire.location("15550009"))
        body = await stats(wire)
        assert body["recorded"] == {"enabled": False, "kept": 1, "limit": 1, "dropped": 5}
        assert body["requests"]["total"] == 7
        assert body["sends"]["recipients"] == 6
        fake.record_requests = True
        fake.record_limit = 0
        await wire.call("GET", "/block_users")
        assert fake.requests == []
        assert (await stats(wire))["recorded"]["dropped"] == 7


async def test_requests_route_serves_the_recording(wire: Wire, fake: FakeDialog360) -> None:
    await wire.call("POST", "/messages", json=wire.location(), params={"debug": "1"})
    await wire.call("POST", "/messages", json=None, headers={"Content-Type": "text/plain"})
    status, text = await _get(wire.session, fake.url + "/_fake/requests")
    assert status == 200
    first, second = json.loads(text)
    assert first["method"] == "POST"
    assert first["path"] == "/messages"
    assert first["query"] == {"debug": "1"}
    assert first["json"] == wire.location()
    assert first["channel"] == fake.requests[0].channel is not None
    assert first["headers"]["D360-API-KEY"] == "***"
    assert first["headers"]["Content-Type"] == "application/json"
    assert second["json"] is None


async def test_reset_route(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    await wire.call("POST", "/block_users", json=wire.block("15550001"))
    await wire.call("POST", "/messages", json=wire.location())
    await wire.call("POST", "/messages", json=wire.location())
    fake.fail_recipient("15550002")
    async with wire.session.post(fake.url + "/_fake/reset") as response:
        assert (response.status, await response.json()) == (200, {"reset": True, "state": False})
    body = await stats(wire)
    assert body["requests"]["total"] == 0
    assert body["sends"]["duplicates"] == {}
    assert body["responses"]["by_status"] == {}
    assert fake.requests == []
    assert fake.blocklist(wire.key) == ["15550001"]  # state survives a plain reset
    assert (await wire.call("POST", "/messages", json=wire.location("15550002")))[0] == 200
    async with wire.session.post(fake.url + "/_fake/reset?state=1") as response:
        assert (response.status, await response.json()) == (200, {"reset": True, "state": True})
    assert fake.blocklist(wire.key) == []
    assert fake.engage_all  # config survives


async def test_no_key_in_stats_or_recording(wire: Wire) -> None:
    secrets = {
        "cloud": "cloud-SECRET-key",
        "wrong": "wrong-SECRET-key",
        "partner": "partner-SECRET-key",
        "token": "partner-SECRET-token",
        "query": "query-SECRET-token",
    }
    fake = FakeDialog360(
        api_keys=[secrets["cloud"]],
        partner_api_key=secrets["partner"],
        partner_token=secrets["token"],
        engage_all=True,
    )
    async with fake:
        fake.add_partner_channel("exampleCH", api_key=secrets["cloud"])
        wire.fake = fake
        session = wire.session
        await wire.call("POST", "/messages", json=wire.location(), key=secrets["cloud"])
        await wire.call("POST", "/messages", json=wire.location(), key=secrets["wrong"])
        await wire.call(
            "POST",
            META_PATH,
            json=wire.location(),
            key=None,
            headers={"Authorization": f"Bearer {secrets['cloud']}"},
        )
        partner = "/partners/examplePA/channels/exampleCH/block_users"
        for headers in (
            {"X-API-Key": secrets["partner"]},
            {"Authorization": f"Bearer {secrets['token']}"},
        ):
            await wire.call("GET", partner, key=None, headers=headers, base=fake.partner_url)
        await wire.call(
            "GET",
            "/block_users",
            key=secrets["cloud"],
            params={"access_token": secrets["query"], "limit": "5"},
        )
        texts = [
            (await _get(session, fake.url + path))[1]
            for path in ("/_fake/stats?by_recipient=1", "/_fake/requests")
        ]
        dump = "\n".join(texts) + repr(fake.requests) + json.dumps(fake.stats())
        for secret in secrets.values():
            assert secret not in dump
        body = json.loads(texts[0])
        assert body["requests"]["total"] == 6
        assert body["requests"]["by_route"]["POST /{version}/{phone_id}/messages"] == 1
        assert body["sends"]["total"] == 2
        recorded = json.loads(texts[1])
        assert recorded[-1]["query"] == {"access_token": "***", "limit": "5"}
        assert {r["headers"].get("Authorization") for r in recorded} == {None, "***"}
