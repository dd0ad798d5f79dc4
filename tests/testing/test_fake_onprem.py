"""On-Premise routes under /v1."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from dialog360_async.testing import FakeDialog360

if TYPE_CHECKING:
    from tests.testing.conftest import Wire

NOT_ENGAGED = "Invalid Request. This contact has not engaged with you in the last 24 hrs."


async def test_send_location_and_contacts(wire: Wire, fake: FakeDialog360) -> None:
    for body in (wire.location("+15550001", cloud=False), wire.contacts("15550001", cloud=False)):
        status, reply = await wire.call("POST", "/v1/messages", json=body)
        assert status == 201
        assert reply["messages"][0]["id"].startswith("gBGH")
        assert reply["meta"] == {"api_status": "stable", "version": "2.53.1"}
    assert fake.sends == {"15550001": 2}


async def test_invalid_send_is_1009(wire: Wire, fake: FakeDialog360) -> None:
    body = wire.location(cloud=False)
    body["location"] = {"latitude": 100, "longitude": 0}
    status, reply = await wire.call("POST", "/v1/messages", json=body)
    assert status == 400
    [error] = reply["errors"]
    assert error["code"] == 1009
    assert error["title"] == "Parameter value is not valid"
    assert error["details"]
    status, reply = await wire.call("POST", "/v1/messages", json={"type": "location"})
    assert (status, reply["errors"][0]["code"]) == (400, 1009)
    assert not fake.sends


async def test_check_contacts(wire: Wire) -> None:
    body = {"blocking": "wait", "contacts": ["+55 12 3456-789", "nope"], "force_check": True}
    status, reply = await wire.call("POST", "/v1/contacts", json=body)
    assert status == 200
    assert reply["contacts"] == [
        {"input": "+55 12 3456-789", "status": "valid", "wa_id": "55123456789"},
        {"input": "nope", "status": "invalid"},
    ]
    assert reply["meta"]["api_status"] == "stable"


@pytest.mark.parametrize(
    "body",
    [
        {"contacts": []},
        {"contacts": "+5512345"},
        {"contacts": ["+5512345"], "blocking": "sometimes"},
        {"contacts": ["+5512345"], "force_check": "yes"},
        {"contacts": [5512345]},
    ],
)
async def test_check_contacts_invalid(wire: Wire, body: object) -> None:
    status, reply = await wire.call("POST", "/v1/contacts", json=body)
    assert (status, reply["errors"][0]["code"]) == (400, 1009)


async def test_block_requires_engagement(wire: Wire, fake: FakeDialog360) -> None:
    status, reply = await wire.call("POST", "/v1/contacts/+15550001/block")
    assert status == 400
    assert reply["errors"] == [
        {"code": 2048, "title": "Not engaged contact", "details": NOT_ENGAGED}
    ]
    assert fake.blocklist(wire.key) == []


async def test_block_unblock_blocklist(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("+15550001", "+15550002")
    status, reply = await wire.call("POST", "/v1/contacts/+15550001/block", json={"reason": "spam"})
    assert status == 200
    assert reply == {"meta": {"api_status": "stable", "version": "2.53.1"}}
    status, _ = await wire.call("POST", "/v1/contacts/15550002/block")
    assert status == 200

    status, listing = await wire.call("GET", "/v1/contacts/blocklist", params={"limit": "10"})
    assert status == 200
    assert listing == {
        "contacts": [
            {"wa_id": "15550001@s.whatsapp.net"},
            {"wa_id": "15550002@s.whatsapp.net"},
        ],
        "pagination": {"limit": 10, "offset": 0, "total": 2},
    }
    status, _ = await wire.call("POST", "/v1/contacts/+15550001/unblock")
    assert status == 200
    _, listing = await wire.call("GET", "/v1/contacts/blocklist")
    assert listing["contacts"] == [{"wa_id": "15550002@s.whatsapp.net"}]
    assert listing["pagination"] == {"limit": 100, "offset": 0, "total": 1}


async def test_unblock_needs_no_engagement(wire: Wire) -> None:
    status, _ = await wire.call("POST", "/v1/contacts/15550009/unblock")
    assert status == 200


async def test_report(wire: Wire, fake: FakeDialog360) -> None:
    status, reply = await wire.call("POST", "/v1/contacts/15550001/report", json={})
    assert (status, reply["errors"][0]["code"]) == (400, 2048)
    fake.engage("15550001")
    status, _ = await wire.call("POST", "/v1/contacts/15550001/report")
    assert status == 200
    assert fake.blocklist(wire.key) == []
    body = {"reason": "abuse", "block": True, "message_id": "gBGHabc"}
    status, _ = await wire.call("POST", "/v1/contacts/15550001/report", json=body)
    assert status == 200
    assert fake.blocklist(wire.key) == ["15550001"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/contacts/abc/block", None),
        ("/v1/contacts/12/unblock", None),
        ("/v1/contacts/15550001/block", {"reason": "x" * 60}),
        ("/v1/contacts/15550001/block", {"reason": 5}),
        ("/v1/contacts/15550001/report", {"block": "yes"}),
        ("/v1/contacts/15550001/report", {"message_id": 7}),
        ("/v1/contacts/15550001/block", ["not", "an", "object"]),
    ],
)
async def test_block_report_invalid(
    wire: Wire, fake: FakeDialog360, path: str, body: object
) -> None:
    fake.engage_all = True
    status, reply = await wire.call("POST", path, json=body)
    assert (status, reply["errors"][0]["code"]) == (400, 1009)


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "201"}, {"limit": "ten"}, {"offset": "-1"}]
)
async def test_blocklist_bad_params(wire: Wire, params: dict[str, str]) -> None:
    status, reply = await wire.call("GET", "/v1/contacts/blocklist", params=params)
    assert (status, reply["errors"][0]["code"]) == (400, 1009)


async def test_blocklist_paging_250_with_offsets(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    users = [str(4915550000000 + i) for i in range(250)]
    for user in users:
        status, _ = await wire.call("POST", f"/v1/contacts/+{user}/block")
        assert status == 200
    seen: list[str] = []
    offset = 0
    for _ in range(10):  # bounded: 3 pages expected
        _, page = await wire.call(
            "GET", "/v1/contacts/blocklist", params={"limit": "100", "offset": str(offset)}
        )
        assert page["pagination"]["total"] == 250
        seen += [c["wa_id"].removesuffix("@s.whatsapp.net") for c in page["contacts"]]
        offset += 100
        if offset >= page["pagination"]["total"]:
            break
    assert seen == users
    _, page = await wire.call("GET", "/v1/contacts/blocklist", params={"offset": "300"})
    assert page["contacts"] == []


async def test_blocklist_capacity(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    fake.blocklist_capacity = 1
    assert (await wire.call("POST", "/v1/contacts/15550001/block"))[0] == 200
    status, reply = await wire.call("POST", "/v1/contacts/15550002/block")
    assert (status, reply["errors"][0]["code"]) == (400, 139101)


async def test_onprem_and_cloud_share_channel_state(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("15550001")
    await wire.call("POST", "/v1/contacts/15550001/block")
    _, page = await wire.call("GET", "/block_users")
    assert page["data"][0]["block_users"] == [{"input": "15550001", "wa_id": "15550001"}]
