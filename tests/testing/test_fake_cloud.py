"""Cloud API routes: /messages and /block_users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dialog360_async.testing import FakeDialog360

if TYPE_CHECKING:
    from tests.testing.conftest import Wire


async def test_send_location_success_shape(wire: Wire, fake: FakeDialog360) -> None:
    status, body = await wire.call("POST", "/messages", json=wire.location("+1 555 0001"))
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 555 0001", "wa_id": "15550001"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.")
    assert fake.sends == {"15550001": 1}


async def test_send_contacts_and_text(wire: Wire) -> None:
    status, _body = await wire.call("POST", "/messages", json=wire.contacts())
    assert status == 200
    text = {"messaging_product": "whatsapp", "to": "15550009", "type": "text"}
    status, _ = await wire.call("POST", "/messages", json={**text, "text": {"body": "hi"}})
    assert status == 200


async def test_message_ids_are_unique(wire: Wire) -> None:
    ids = set()
    for _ in range(20):
        _, body = await wire.call("POST", "/messages", json=wire.location())
        ids.add(body["messages"][0]["id"])
    assert len(ids) == 20


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: _without(b, "messaging_product"), 131008),
        (lambda b: {**b, "messaging_product": "sms"}, 100),
        (lambda b: _without(b, "to"), 131008),
        (lambda b: {**b, "to": "not a phone"}, 100),
        (lambda b: _without(b, "type"), 131008),
        (lambda b: {**b, "type": "sticker"}, 100),
        (lambda b: _without(b, "location", "latitude"), 131008),
        (lambda b: {**b, "location": {"latitude": 91, "longitude": 0}}, 100),
        (lambda b: {**b, "location": {"latitude": 0, "longitude": -180.5}}, 100),
        (lambda b: {**b, "location": {"latitude": True, "longitude": 0}}, 100),
        (lambda b: {**b, "location": {"latitude": "x", "longitude": 0}}, 100),
    ],
)
async def test_invalid_location_bodies(
    wire: Wire, fake: FakeDialog360, mutate: Any, code: int
) -> None:
    status, body = await wire.call("POST", "/messages", json=mutate(wire.location()))
    assert status == 400
    error = body["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code})")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]
    assert not fake.sends


async def test_location_accepts_numeric_strings(wire: Wire) -> None:
    body = {**wire.location(), "location": {"latitude": "-90", "longitude": "180"}}
    status, _ = await wire.call("POST", "/messages", json=body)
    assert status == 200


def _card(**changes: Any) -> dict[str, Any]:
    card: dict[str, Any] = {"name": {"formatted_name": "Ada", "last_name": "L"}}
    card.update(changes)
    return card


@pytest.mark.parametrize(
    ("contacts", "code"),
    [
        ([], 100),
        ("nope", 100),
        ([_card()] * 258, 100),
        ([{"birthday": "1999-01-01"}], 131008),
        ([{"name": {"first_name": "Ada"}}], 131008),
        ([{"name": {"formatted_name": "Ada"}}], 100),
        ([_card(birthday="01/23/1999")], 100),
        ([_card(birthday="1999-13-01")], 100),
        ([_card(phones="+1555")], 100),
    ],
)
async def test_invalid_contacts_bodies(wire: Wire, contacts: Any, code: int) -> None:
    body = {**wire.contacts(), "contacts": contacts}
    status, reply = await wire.call("POST", "/messages", json=body)
    assert (status, reply["error"]["code"]) == (400, code)


async def test_contacts_limit_is_257(wire: Wire) -> None:
    body = {**wire.contacts(), "contacts": [_card()] * 257}
    status, _ = await wire.call("POST", "/messages", json=body)
    assert status == 200


async def test_non_json_body_is_invalid_parameter(wire: Wire, fake: FakeDialog360) -> None:
    async with wire.session.post(
        fake.url + "/messages", data=b"{not json", headers={"D360-API-KEY": wire.key}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == 100


async def test_block_list_unblock_roundtrip(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("+15550001", "15550002")
    status, body = await wire.call(
        "POST", "/block_users", json=wire.block("+1 555 0001", "15550002")
    )
    assert status == 200
    assert body == {
        "messaging_product": "whatsapp",
        "block_users": {
            "added_users": [
                {"input": "+1 555 0001", "wa_id": "15550001"},
                {"input": "15550002", "wa_id": "15550002"},
            ]
        },
    }
    assert fake.blocklist(wire.key) == ["15550001", "15550002"]

    status, listing = await wire.call("GET", "/block_users")
    assert status == 200
    assert listing["data"] == [
        {
            "block_users": [
                {"input": "+1 555 0001", "wa_id": "15550001"},
                {"input": "15550002", "wa_id": "15550002"},
            ]
        }
    ]
    assert "next" not in listing["paging"]

    status, body = await wire.call("DELETE", "/block_users", json=wire.block("15550001"))
    assert status == 200
    assert body["block_users"] == {"removed_users": [{"input": "15550001", "wa_id": "15550001"}]}
    _, listing = await wire.call("GET", "/block_users")
    assert [u["wa_id"] for u in listing["data"][0]["block_users"]] == ["15550002"]


async def test_block_mixed_result_is_400_with_139100(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("15550001")
    status, body = await wire.call("POST", "/block_users", json=wire.block("15550001", "15550002"))
    assert status == 400
    result = body["block_users"]
    assert result["added_users"] == [{"input": "15550001", "wa_id": "15550001"}]
    [failed] = result["failed_users"]
    assert failed["input"] == "15550002"
    assert failed["wa_id"] == "15550002"
    assert failed["errors"][0]["code"] == 131047
    assert failed["errors"][0]["message"] == "Re-engagement required"
    assert failed["errors"][0]["error_data"]["details"]
    assert body["error"]["code"] == 139100
    assert fake.blocklist(wire.key) == ["15550001"]


async def test_unblock_ignores_engagement(wire: Wire) -> None:
    status, body = await wire.call("DELETE", "/block_users", json=wire.block("15550003"))
    assert status == 200
    assert body["block_users"]["removed_users"] == [{"input": "15550003", "wa_id": "15550003"}]


async def test_block_batch_limits(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    users = [str(15550000000 + i) for i in range(1001)]
    status, body = await wire.call("POST", "/block_users", json=wire.block(*users))
    assert (status, body["error"]["code"]) == (400, 100)
    status, body = await wire.call("POST", "/block_users", json=wire.block(*users[:1000]))
    assert status == 200
    assert len(body["block_users"]["added_users"]) == 1000
    status, body = await wire.call("POST", "/block_users", json={"messaging_product": "whatsapp"})
    assert (status, body["error"]["code"]) == (400, 131008)
    status, body = await wire.call("POST", "/block_users", json={"block_users": [{"user": "1"}]})
    assert (status, body["error"]["code"]) == (400, 131008)


async def test_blocklist_capacity(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    fake.blocklist_capacity = 2
    status, body = await wire.call(
        "POST", "/block_users", json=wire.block("15550001", "15550002", "15550003")
    )
    assert status == 400
    assert [f["errors"][0]["code"] for f in body["block_users"]["failed_users"]] == [139101]
    status, _ = await wire.call("POST", "/block_users", json=wire.block("15550001"))
    assert status == 200


async def test_paging_250_users_with_cursors(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    users = [str(4915550000000 + i) for i in range(250)]
    status, _ = await wire.call("POST", "/block_users", json=wire.block(*users))
    assert status == 200

    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {"limit": "100"}
    for _ in range(10):  # bounded: 3 pages expected
        status, page = await wire.call("GET", "/block_users", params=params)
        assert status == 200
        pages += 1
        seen += [u["wa_id"] for u in page["data"][0]["block_users"]]
        if "next" not in page["paging"]:
            break
        params = {"limit": "100", "after": page["paging"]["cursors"]["after"]}
        assert page["paging"]["next"].startswith(fake.url + "/block_users?")
    assert pages == 3
    assert seen == users

    # "before" walks back from the last page.
    params = {"limit": "100", "before": page["paging"]["cursors"]["before"]}
    _, previous = await wire.call("GET", "/block_users", params=params)
    assert [u["wa_id"] for u in previous["data"][0]["block_users"]] == users[100:200]


async def test_next_url_is_followable(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    await wire.call("POST", "/block_users", json=wire.block("15550001", "15550002", "15550003"))
    _, first = await wire.call("GET", "/block_users", params={"limit": "2"})
    async with wire.session.get(first["paging"]["next"], headers={"D360-API-KEY": wire.key}) as r:
        second = await r.json()
    assert [u["wa_id"] for u in second["data"][0]["block_users"]] == ["15550003"]


async def test_default_limit_is_100(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage_all = True
    await wire.call(
        "POST", "/block_users", json=wire.block(*(str(1555000000 + i) for i in range(101)))
    )
    _, page = await wire.call("GET", "/block_users")
    assert len(page["data"][0]["block_users"]) == 100
    assert "next" in page["paging"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "x"}, {"after": "garbage!"}])
async def test_list_bad_params(wire: Wire, params: dict[str, str]) -> None:
    status, body = await wire.call("GET", "/block_users", params=params)
    assert (status, body["error"]["code"]) == (400, 100)


async def test_meta_list_shape(wire: Wire, fake: FakeDialog360) -> None:
    fake.list_shape = "meta"
    fake.engage("15550001")
    await wire.call("POST", "/block_users", json=wire.block("+15550001"))
    _, page = await wire.call("GET", "/block_users")
    assert page["data"] == [{"messaging_product": "whatsapp", "wa_id": "15550001"}]
    assert set(page["paging"]["cursors"]) == {"after", "before"}


async def test_channels_are_isolated(wire: Wire, fake: FakeDialog360) -> None:
    fake.engage("15550001", api_key=wire.key)
    status, _ = await wire.call("POST", "/block_users", json=wire.block("15550001"))
    assert status == 200
    status, _body = await wire.call(
        "POST", "/block_users", json=wire.block("15550001"), key="another-key"
    )
    assert status == 400  # not engaged on the other channel
    assert fake.blocklist("another-key") == []
    assert fake.blocklist("never-seen") == []
