"""Meta-style sends: ``POST /{version}/{phone_id}/messages`` with ``Authorization: Bearer``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360

if TYPE_CHECKING:
    from tests.testing.conftest import Wire

PATH = "/v21.0/106540352242922/messages"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_meta_send_location_and_contacts(wire: Wire, fake: FakeDialog360) -> None:
    status, body = await wire.call(
        "POST", PATH, json=wire.location("+1 555 0001"), key=None, headers=bearer("token-1")
    )
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 555 0001", "wa_id": "15550001"}]
    assert body["messages"][0]["id"].startswith("wamid.")
    status, _ = await wire.call(
        "POST", PATH, json=wire.contacts(), key=None, headers=bearer("token-1")
    )
    assert status == 200
    assert fake.sends == {"15550001": 2}


async def test_meta_token_is_a_channel_like_a_d360_key(wire: Wire, fake: FakeDialog360) -> None:
    fake.throughput = 1  # burst of one per channel
    status, _ = await wire.call("POST", PATH, json=wire.location(), headers=bearer(wire.key))
    assert status == 200
    # The same channel through the 360dialog route is now out of tokens.
    status, body = await wire.call("POST", "/messages", json=wire.location())
    assert (status, body["error"]["code"]) == (429, 130429)
    # Another token is another channel.
    status, _ = await wire.call("POST", PATH, json=wire.location(), headers=bearer("other"))
    assert status == 200


@pytest.mark.parametrize("header", [None, "Bearer ", "Basic abc", "token-1"])
async def test_meta_send_without_a_bearer_token_is_190(wire: Wire, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    status, body = await wire.call("POST", PATH, json=wire.location(), key=None, headers=headers)
    assert status == 401
    assert body["error"]["code"] == 190
    assert body["error"]["type"] == "OAuthException"


async def test_meta_send_unknown_token_is_190() -> None:
    async with FakeDialog360(api_keys=["good"]) as fake:
        async with aiohttp.ClientSession() as session:
            url = fake.url + PATH
            body = {"messaging_product": "whatsapp", "to": "15550001", "type": "text"}
            body["text"] = {"body": "hi"}
            async with session.post(url, json=body, headers=bearer("bad")) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == 190
            async with session.post(url, json=body, headers=bearer("good")) as resp:
                assert resp.status == 200


async def test_meta_send_validates_the_body_like_cloud(wire: Wire) -> None:
    body = wire.location(cloud=False)  # no messaging_product
    status, answer = await wire.call("POST", PATH, json=body, key=None, headers=bearer("t"))
    assert (status, answer["error"]["code"]) == (400, 131008)


@pytest.mark.parametrize("path", ["/21.0/123/messages", "/v21.0/123/block_users"])
async def test_meta_route_needs_a_version_and_messages(wire: Wire, path: str) -> None:
    status, _ = await wire.call("POST", path, json=wire.location(), headers=bearer("t"))
    assert status == 404


async def test_meta_send_reads_null_members_as_absent(wire: Wire) -> None:
    body = wire.contacts()
    body["contacts"][0]["phones"][0]["wa_id"] = None  # how pywa sends unset fields
    body["contacts"][0]["name"]["last_name"] = None
    status, _ = await wire.call("POST", PATH, json=body, key=None, headers=bearer("t"))
    assert status == 200
    # The 360dialog route stays strict.
    status, answer = await wire.call("POST", "/messages", json=body)
    assert (status, answer["error"]["code"]) == (400, 100)
