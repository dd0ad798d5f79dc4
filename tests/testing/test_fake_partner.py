"""Partner API routes under /api/v2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from dialog360_async.testing import FakeDialog360

if TYPE_CHECKING:
    from tests.testing.conftest import Wire


async def test_block_list_unblock(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH")
    fake.engage("15550001")
    status, body = await wire.partner("POST", "exampleCH", wire.block("+15550001", cloud=False))
    assert status == 200
    assert body == {
        "meta": {
            "developer_message": body["meta"]["developer_message"],
            "http_code": 200,
            "success": True,
        },
        "status_code": 200,
        "data": {
            "messaging_product": "whatsapp",
            "block_users": {
                "added_users": [{"input": "+15550001", "wa_id": "15550001"}],
                "removed_users": [],
                "failed_users": [],
            },
        },
    }
    assert fake.partner_blocklist("exampleCH") == ["15550001"]

    status, body = await wire.partner("GET", "exampleCH")
    assert status == 200
    assert body["data"] == {"block_users": [{"input": "+15550001", "wa_id": "15550001"}]}
    assert body["status_code"] == 200

    status, body = await wire.partner("DELETE", "exampleCH", wire.block("15550001", cloud=False))
    assert status == 200
    assert body["data"]["block_users"]["removed_users"] == [
        {"input": "15550001", "wa_id": "15550001"}
    ]
    _, body = await wire.partner("GET", "exampleCH")
    assert body["data"]["block_users"] == []


async def test_mixed_failure(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH")
    fake.engage("15550001")
    status, body = await wire.partner(
        "POST", "exampleCH", wire.block("15550001", "15550002", cloud=False)
    )
    assert status == 400
    assert body["meta"]["success"] is False
    assert body["meta"]["http_code"] == 400
    assert body["status_code"] == 400
    data = body["data"]
    assert data["block_users"]["added_users"] == [{"input": "15550001", "wa_id": "15550001"}]
    assert data["block_users"]["failed_users"][0]["errors"][0]["code"] == 131047
    assert data["errors"]["code"] == 139100


async def test_shares_state_with_api_key(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH", api_key=wire.key)
    fake.engage("15550001", api_key=wire.key)
    status, _ = await wire.partner("POST", "exampleCH", wire.block("15550001", cloud=False))
    assert status == 200
    assert fake.blocklist(wire.key) == ["15550001"]
    _, page = await wire.call("GET", "/block_users")
    assert page["data"][0]["block_users"][0]["wa_id"] == "15550001"


async def test_not_found(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH")
    status, body = await wire.partner("GET", "unknownCH")
    assert (status, body) == (404, {"detail": {}, "message": "Not found"})
    status, body = await wire.partner("GET", "exampleCH", partner_id="otherPA")
    assert (status, body) == (404, {"detail": {}, "message": "Not found"})


@pytest.mark.parametrize(
    "body",
    [None, {}, {"block_users": "x"}, {"block_users": [{"phone": "1"}]}, [1, 2]],
)
async def test_validation_error(wire: Wire, fake: FakeDialog360, body: object) -> None:
    fake.add_partner_channel("exampleCH")
    status, reply = await wire.partner("POST", "exampleCH", body)
    assert status == 422
    assert reply["message"] == "Validation error"
    assert list(reply["detail"]["body"]) == ["block_users"]


async def test_missing_field_says_field_required(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH")
    status, reply = await wire.partner("DELETE", "exampleCH", {})
    assert (status, reply) == (
        422,
        {"detail": {"body": {"block_users": ["field required"]}}, "message": "Validation error"},
    )


async def test_auth(wire: Wire, fake: FakeDialog360) -> None:
    fake.add_partner_channel("exampleCH")
    path = "/partners/examplePA/channels/exampleCH/block_users"
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer anything"}):
        status, body = await wire.call(
            "GET", path, key=None, headers=headers, base=fake.partner_url
        )
        assert (status, body) == (401, {"detail": {}, "message": "Unauthorized"})


async def test_bearer_token(session: object) -> None:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    async with FakeDialog360(partner_token="tok", partner_api_key="pk") as fake:
        fake.add_partner_channel("exampleCH")
        url = fake.partner_url + "/partners/examplePA/channels/exampleCH/block_users"
        async with session.get(url, headers={"Authorization": "Bearer tok"}) as response:
            assert response.status == 200
        async with session.get(url, headers={"x-api-key": "pk"}) as response:
            assert response.status == 200
        async with session.get(url, headers={"Authorization": "Bearer pk"}) as response:
            assert response.status == 401
