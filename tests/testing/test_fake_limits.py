"""Auth failures and the throughput, pair and gateway limits (driven by a manual clock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360

if TYPE_CHECKING:
    from tests.testing.conftest import ManualClock, Wire

INVALID_KEY = {"meta": {"success": False, "httpCode": 401, "developerMessage": "Invalid api key"}}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/messages"),
        ("GET", "/block_users"),
        ("POST", "/v1/messages"),
        ("GET", "/v1/contacts/blocklist"),
        ("POST", "/v1/contacts/15550001/block"),
    ],
)
async def test_missing_key_is_401(wire: Wire, fake: FakeDialog360, method: str, path: str) -> None:
    status, body = await wire.call(method, path, key=None, json=wire.location())
    assert (status, body) == (401, INVALID_KEY)
    status, body = await wire.call(method, path, key="", json=wire.location())
    assert (status, body) == (401, INVALID_KEY)
    assert not fake.sends


async def test_restricted_keys(session: aiohttp.ClientSession) -> None:
    async with FakeDialog360(api_keys=["good"]) as fake:
        body = {
            "messaging_product": "whatsapp",
            "to": "1555001",
            "type": "text",
            "text": {"body": "x"},
        }
        async with session.post(
            fake.url + "/messages", json=body, headers={"D360-API-KEY": "bad"}
        ) as r:
            assert r.status == 401
            assert await r.json() == INVALID_KEY
        async with session.post(
            fake.url + "/messages", json=body, headers={"D360-API-KEY": "good"}
        ) as r:
            assert r.status == 200
        assert fake.requests[0].channel is None
        assert fake.requests[1].channel is not None
        with pytest.raises(ValueError, match="api_keys") as excinfo:
            fake.engage("1555001", api_key="bad")
        assert "bad" not in str(excinfo.value)


async def test_throughput_token_bucket(wire: Wire, fake: FakeDialog360, clock: ManualClock) -> None:
    fake.throughput = 5.0
    statuses = [
        (await wire.call("POST", "/messages", json=wire.location(f"1555000{i}")))[0]
        for i in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2
    status, body = await wire.call("POST", "/messages", json=wire.location("15559999"))
    assert status == 429
    assert body["error"]["code"] == 130429
    assert body["error"]["message"] == "(#130429) Rate limit hit"
    assert sum(fake.sends.values()) == 5
    assert "15559999" not in fake.sends

    clock.advance(0.2)  # one token back at 5/s
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 429
    clock.advance(10)  # refills to the burst (= rate), not beyond
    statuses = [(await wire.call("POST", "/messages", json=wire.location()))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_throughput_is_per_channel(wire: Wire, fake: FakeDialog360) -> None:
    fake.throughput = 1.0
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 429
    assert (await wire.call("POST", "/messages", json=wire.location(), key="k2"))[0] == 200
    status, body = await wire.call("POST", "/v1/messages", json=wire.location(cloud=False))
    assert status == 429
    assert body["errors"][0]["code"] == 130429


async def test_throughput_off(wire: Wire, fake: FakeDialog360) -> None:
    fake.throughput = None
    for _ in range(200):
        assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200
    assert fake.sends["15550001"] == 200


async def test_pair_rate_limit(wire: Wire, fake: FakeDialog360, clock: ManualClock) -> None:
    fake.pair_rate_limit = 6.0
    assert (await wire.call("POST", "/messages", json=wire.location("15550001")))[0] == 200
    status, body = await wire.call("POST", "/messages", json=wire.location("+1 555 0001"))
    assert status == 400
    assert body["error"]["code"] == 131056
    # other recipients are unaffected
    assert (await wire.call("POST", "/messages", json=wire.location("15550002")))[0] == 200
    clock.advance(5.9)
    assert (await wire.call("POST", "/messages", json=wire.location("15550001")))[0] == 400
    clock.advance(0.1)
    assert (await wire.call("POST", "/messages", json=wire.location("15550001")))[0] == 200
    assert fake.sends == {"15550001": 2, "15550002": 1}
    status, body = await wire.call(
        "POST", "/v1/messages", json=wire.location("15550001", cloud=False)
    )
    assert (status, body["errors"][0]["code"]) == (400, 131056)


async def test_gateway_limit(wire: Wire, fake: FakeDialog360, clock: ManualClock) -> None:
    fake.gateway_limit = (1, 1.0)
    assert (await wire.call("GET", "/block_users"))[0] == 200
    status, body = await wire.call("POST", "/messages", json=wire.location())
    assert status == 400
    assert body == {
        "meta": {
            "success": False,
            "httpCode": 400,
            "developerMessage": "You have exceeded the limit of 1 request every 1 seconds. "
            "Try again later.",
        }
    }
    assert not fake.sends
    # another key has its own budget
    assert (await wire.call("GET", "/v1/contacts/blocklist", key="k2"))[0] == 200
    clock.advance(1.0)
    assert (await wire.call("POST", "/messages", json=wire.location()))[0] == 200

    fake.gateway_limit = (3, 2.5)
    clock.advance(10)
    statuses = [(await wire.call("GET", "/block_users"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 400]
    _, body = await wire.call("GET", "/block_users")
    assert "3 requests every 2.5 seconds" in body["meta"]["developerMessage"]


async def test_engage_all(wire: Wire, fake: FakeDialog360) -> None:
    assert (await wire.call("POST", "/block_users", json=wire.block("15550001")))[0] == 400
    fake.engage_all = True
    assert (await wire.call("POST", "/block_users", json=wire.block("15550001")))[0] == 200


async def test_engage_per_key(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("+1 (555) 0001", api_key="k2")
    assert (await wire.call("POST", "/block_users", json=wire.block("15550001")))[0] == 400
    assert (await wire.call("POST", "/block_users", json=wire.block("15550001"), key="k2"))[
        0
    ] == 200
