"""Every endpoint of every client against the bundled fake server: exact methods, paths, query
strings, headers and JSON bodies, and the results parsed from the answers."""

from __future__ import annotations

import copy

import pytest

from dialog360_async import (
    AuthenticationError,
    BlockResult,
    Contact,
    ContactsMessage,
    ContactStatus,
    Dialog360Client,
    Location,
    LocationMessage,
    Name,
    NotEngagedError,
    OnPremiseClient,
    PartnerClient,
    UserRef,
    ValidationError,
)
from dialog360_async._converter import structure
from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY
from .test_converter import SEED_CONTACTS

USER = "+49 151 1234 5678"
WA_ID = "4915112345678"
HQ = Location(
    latitude=37.758056,
    longitude=-122.425332,
    name="Facebook HQ",
    address="1 Hacker Way, Menlo Park, CA 94025",
)


def only_request(fake: FakeDialog360):  # type: ignore[no-untyped-def]
    assert len(fake.requests) == 1, fake.requests
    return fake.requests[0]


# --- Cloud API ----------------------------------------------------------------------------------


async def test_cloud_send_location(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    sent = await cloud.send_location(USER, HQ)
    req = only_request(fake)
    assert (req.method, req.path, dict(req.query)) == ("POST", "/messages", {})
    assert req.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+4915112345678",
        "type": "location",
        "location": {
            "latitude": 37.758056,
            "longitude": -122.425332,
            "name": "Facebook HQ",
            "address": "1 Hacker Way, Menlo Park, CA 94025",
        },
    }
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["d360-api-key"] == "***"  # present (the fake checked it), redacted in records
    assert headers["user-agent"].startswith("dialog360_async/")
    assert sent.message_id.startswith("wamid.")
    assert (sent.input, sent.wa_id) == ("+4915112345678", WA_ID)
    assert fake.sends[WA_ID] == 1


async def test_cloud_send_contacts_seed_example(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    message = structure(copy.deepcopy(SEED_CONTACTS), ContactsMessage)
    sent = await cloud.send(message)
    assert only_request(fake).json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **SEED_CONTACTS,
    }
    assert sent.message_id


async def test_cloud_send_contacts_single_card(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    card = Contact(name=Name(formatted_name="Ada Lovelace", first_name="Ada"))
    await cloud.send_contacts(USER, card)
    assert only_request(fake).json["contacts"] == [
        {"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"}}
    ]


async def test_cloud_block_unblock_list(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    fake.engage(USER)
    result = await cloud.block_users([USER])
    assert result == BlockResult(added=(UserRef(input="+4915112345678", wa_id=WA_ID),))
    block = fake.requests[-1]
    assert (block.method, block.path) == ("POST", "/block_users")
    assert block.json == {
        "messaging_product": "whatsapp",
        "block_users": [{"user": "+4915112345678"}],
    }
    assert [u.wa_id async for u in cloud.list_blocked_users()] == [WA_ID]
    listing = fake.requests[-1]
    assert (listing.method, listing.path, dict(listing.query)) == (
        "GET",
        "/block_users",
        {"limit": "100"},
    )
    result = await cloud.unblock_users(USER)
    assert result.removed == (UserRef(input="+4915112345678", wa_id=WA_ID),)
    unblock = fake.requests[-1]
    assert (unblock.method, unblock.path) == ("DELETE", "/block_users")
    assert unblock.json == block.json
    assert [u async for u in cloud.list_blocked_users()] == []


async def test_cloud_mixed_block_is_a_result(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    fake.engage("+16505551234")
    result = await cloud.block_users(["+16505551234", "+16505559999"])
    assert result.added == (UserRef(input="+16505551234", wa_id="16505551234"),)
    assert len(result.failed) == 1
    failed = result.failed[0]
    assert failed.input == "+16505559999"
    assert [e.code for e in failed.errors] == [131047]
    assert not result.ok


async def test_cloud_block_splits_at_1000(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    users = [f"+1650{n:07d}" for n in range(2500)]
    fake.engage(*users)
    result = await cloud.block_users(users)
    assert len(result.added) == 2500
    sizes = [len(r.json["block_users"]) for r in fake.requests]
    assert sizes == [1000, 1000, 500]
    listed = [u.wa_id async for u in cloud.list_blocked_users()]
    assert sorted(listed) == sorted(u.lstrip("+") for u in users)
    pages = [r for r in fake.requests if r.method == "GET"]
    assert len(pages) == 25
    assert "after" not in pages[0].query
    assert all("after" in p.query and p.query["limit"] == "100" for p in pages[1:])


async def test_cloud_lists_meta_shape() -> None:
    async with FakeDialog360(list_shape="meta", engage_all=True, throughput=None) as fake:
        async with Dialog360Client(API_KEY, base_url=fake.url) as client:
            await client.block_users([f"+1650555{n:04d}" for n in range(150)])
            assert len([u async for u in client.list_blocked_users()]) == 150


async def test_wrong_key_is_an_authentication_error(fake: FakeDialog360) -> None:
    async with Dialog360Client("wrong-key", base_url=fake.url, retry=None) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send_location(USER, HQ)
    assert info.value.status == 401
    assert fake.sends[WA_ID] == 0


async def test_invalid_input_sends_nothing(fake: FakeDialog360, cloud: Dialog360Client) -> None:
    with pytest.raises(ValidationError):
        await cloud.send_location("not a number", HQ)
    with pytest.raises(ValidationError):
        await cloud.block_users([])
    with pytest.raises(ValidationError):
        await cloud.send({"to": USER})  # type: ignore[arg-type]
    assert fake.requests == []


# --- On-Premise API -----------------------------------------------------------------------------


async def test_onprem_send(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    sent = await onprem.send(LocationMessage(to=USER, location=HQ))
    req = only_request(fake)
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.json == {
        "to": "+4915112345678",
        "type": "location",
        "location": {
            "latitude": 37.758056,
            "longitude": -122.425332,
            "name": "Facebook HQ",
            "address": "1 Hacker Way, Menlo Park, CA 94025",
        },
    }
    assert sent.message_id
    await onprem.send_contacts(USER, [Contact(name=Name(formatted_name="A B", last_name="B"))])
    assert "messaging_product" not in fake.requests[-1].json


async def test_onprem_block_reason_and_failures(
    fake: FakeDialog360, onprem: OnPremiseClient
) -> None:
    fake.engage(USER)
    result = await onprem.block_users([USER, "+16505559999"], reason="spam")
    assert result.added == (UserRef(input="+4915112345678"),)
    assert [(f.input, [e.code for e in f.errors]) for f in result.failed] == [
        ("+16505559999", [2048])
    ]
    paths = sorted((r.method, r.path) for r in fake.requests)
    assert paths == [
        ("POST", "/v1/contacts/+16505559999/block"),
        ("POST", "/v1/contacts/+4915112345678/block"),
    ]
    assert all(r.json == {"reason": "spam"} for r in fake.requests)
    assert fake.blocklist(API_KEY) == [WA_ID]


async def test_onprem_block_without_reason_sends_empty_object(
    fake: FakeDialog360, onprem: OnPremiseClient
) -> None:
    fake.engage(USER)
    await onprem.block_users(USER)
    assert only_request(fake).json == {}


async def test_onprem_unblock(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    fake.engage(USER)
    await onprem.block_users(USER)
    result = await onprem.unblock_users([USER])
    assert result.removed == (UserRef(input="+4915112345678"),)
    req = fake.requests[-1]
    assert (req.method, req.path) == ("POST", "/v1/contacts/+4915112345678/unblock")
    assert fake.blocklist(API_KEY) == []


async def test_onprem_blocklist_paging(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    users = [f"+1650{n:07d}" for n in range(450)]
    fake.engage(*users)
    result = await onprem.block_users(users)
    assert len(result.added) == 450
    fake.reset()
    page = await onprem.get_blocklist(limit=10, offset=5)
    assert dict(only_request(fake).query) == {"limit": "10", "offset": "5"}
    assert (page.limit, page.offset, page.total, len(page.wa_ids)) == (10, 5, 450, 10)
    assert all("@" not in w for w in page.wa_ids)
    fake.reset()
    listed = [u.wa_id async for u in onprem.list_blocked_users()]
    assert sorted(listed) == sorted(u.lstrip("+") for u in users)
    assert [dict(r.query) for r in fake.requests] == [
        {"limit": "200", "offset": "0"},
        {"limit": "200", "offset": "200"},
        {"limit": "200", "offset": "400"},
    ]


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (201, 0), (10, -1), (True, 0)])
async def test_onprem_blocklist_window_validated(
    fake: FakeDialog360, onprem: OnPremiseClient, limit: int, offset: int
) -> None:
    with pytest.raises(ValidationError):
        await onprem.get_blocklist(limit=limit, offset=offset)
    assert fake.requests == []


async def test_onprem_report(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    fake.engage(USER, "+16505551234")
    await onprem.report_user(USER, reason="abuse", block=True, message_id="gBGH123")
    req = only_request(fake)
    assert (req.method, req.path) == ("POST", "/v1/contacts/+4915112345678/report")
    assert req.json == {"block": True, "reason": "abuse", "message_id": "gBGH123"}
    assert fake.blocklist(API_KEY) == [WA_ID]
    await onprem.report_user("+16505551234")
    assert fake.requests[-1].json == {"block": False}


async def test_onprem_report_not_engaged_raises(
    fake: FakeDialog360, onprem: OnPremiseClient
) -> None:
    with pytest.raises(NotEngagedError) as info:
        await onprem.report_user("+16505559999")
    assert info.value.code == 2048


async def test_onprem_reason_rule(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    with pytest.raises(ValidationError, match="60"):
        await onprem.block_users(USER, reason="x" * 60)
    with pytest.raises(ValidationError, match="60"):
        await onprem.report_user(USER, reason="x" * 60)
    assert fake.requests == []
    fake.engage(USER)
    await onprem.block_users(USER, reason="x" * 59)


async def test_onprem_check_contacts(fake: FakeDialog360, onprem: OnPremiseClient) -> None:
    result = await onprem.check_contacts(["+55 12 3456 789"], force_check=True)
    req = only_request(fake)
    assert (req.method, req.path) == ("POST", "/v1/contacts")
    assert req.json == {"blocking": "wait", "contacts": ["+55123456789"], "force_check": True}
    assert result == [ContactStatus(input="+55123456789", status="valid", wa_id="55123456789")]
    await onprem.check_contacts("+55123456789", wait=False)
    assert fake.requests[-1].json["blocking"] == "no_wait"


# --- Partner API --------------------------------------------------------------------------------

PARTNER_PATH = "/api/v2/partners/examplePA/channels/exampleCH/block_users"


async def test_partner_block_list_unblock(fake: FakeDialog360, partner: PartnerClient) -> None:
    fake.engage(USER)
    result = await partner.block_users("exampleCH", [USER])
    assert result.added == (UserRef(input="+4915112345678", wa_id=WA_ID),)
    req = fake.requests[-1]
    assert (req.method, req.path) == ("POST", PARTNER_PATH)
    assert req.json == {"block_users": [{"user": "+4915112345678"}]}
    assert {k.lower(): v for k, v in req.headers.items()}["x-api-key"] == "***"
    assert [u.wa_id async for u in partner.list_blocked_users("exampleCH")] == [WA_ID]
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("GET", PARTNER_PATH)
    result = await partner.unblock_users("exampleCH", USER)
    assert result.removed == (UserRef(input="+4915112345678", wa_id=WA_ID),)
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("DELETE", PARTNER_PATH)
    assert fake.blocklist(API_KEY) == []  # the partner channel shares the key's channel


async def test_partner_mixed_failure(fake: FakeDialog360, partner: PartnerClient) -> None:
    fake.engage(USER)
    result = await partner.block_users("exampleCH", [USER, "+16505559999"])
    assert len(result.added) == 1
    assert [f.input for f in result.failed] == ["+16505559999"]


async def test_partner_bearer_token() -> None:
    async with FakeDialog360(partner_token="tok-123", engage_all=True) as fake:
        fake.add_partner_channel("exampleCH")
        async with PartnerClient(
            partner_id="examplePA", token="tok-123", base_url=fake.partner_url
        ) as client:
            await client.block_users("exampleCH", USER)
        headers = {k.lower(): v for k, v in fake.requests[-1].headers.items()}
        assert headers["authorization"] == "***"
        async with PartnerClient(
            partner_id="examplePA", token="wrong", base_url=fake.partner_url, retry=None
        ) as client:
            with pytest.raises(AuthenticationError):
                await client.block_users("exampleCH", USER)


def test_partner_needs_exactly_one_credential() -> None:
    with pytest.raises(ValidationError):
        PartnerClient(partner_id="examplePA")
    with pytest.raises(ValidationError):
        PartnerClient(partner_id="examplePA", api_key="a", token="b")
