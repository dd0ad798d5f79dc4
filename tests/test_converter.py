"""The one converter: request bodies exactly as documented, responses of every documented shape."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialog360_async import (
    APIError,
    BlockResult,
    ContactsMessage,
    ContactStatus,
    ErrorDetail,
    FailedUser,
    Location,
    LocationMessage,
    SentMessage,
    UserRef,
)
from dialog360_async._converter import structure, structure_response, unstructure
from dialog360_async._wire import (
    BlocklistResponse,
    BlockResponse,
    ContactsResponse,
    ListResponse,
    PartnerBlockEnvelope,
    PartnerListEnvelope,
    SendResponse,
    sent_message,
)
from dialog360_async.testing import SEED_CONTACT_CARD

# The full contacts example of the 360dialog page (seeds/001), with its placeholders
# COUNTRY_CODE and YEAR_MONTH_DAY given real values, since those are validated.
SEED_CONTACTS: dict[str, Any] = {
    "to": "16505551234",
    "type": "contacts",
    "contacts": [SEED_CONTACT_CARD],
}


def test_seed_contacts_example_round_trips() -> None:
    message = structure(copy.deepcopy(SEED_CONTACTS), ContactsMessage)
    assert unstructure(message) == SEED_CONTACTS


def test_location_example() -> None:
    message = LocationMessage(
        to="PHONE" and "16505551234",
        location=Location(
            latitude=37.758056,
            longitude=-122.425332,
            name="Facebook HQ",
            address="1 Hacker Way, Menlo Park, CA 94025",
        ),
    )
    assert unstructure(message) == {
        "to": "16505551234",
        "type": "location",
        "location": {
            "longitude": -122.425332,
            "latitude": 37.758056,
            "name": "Facebook HQ",
            "address": "1 Hacker Way, Menlo Park, CA 94025",
        },
    }


def test_none_and_empty_lists_are_omitted_constants_kept() -> None:
    body = unstructure(
        LocationMessage(to="16505551234", location=Location(latitude=1, longitude=2))
    )
    assert body == {
        "to": "16505551234",
        "type": "location",
        "location": {"latitude": 1.0, "longitude": 2.0},
    }


def test_send_response_cloud_and_onprem() -> None:
    cloud = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+1 650", "wa_id": "1650"}],
        "messages": [{"id": "wamid.X", "message_status": "accepted"}],
        "new_field": 1,
    }
    assert structure(cloud, SendResponse).result() == SentMessage(
        message_id="wamid.X", input="+1 650", wa_id="1650", message_status="accepted"
    )
    onprem = {"messages": [{"id": "gBGH"}], "meta": {"api_status": "stable", "version": "2.31.5"}}
    assert structure(onprem, SendResponse).result() == SentMessage(message_id="gBGH")


def test_mixed_block_result_shape() -> None:
    body = {
        "messaging_product": "whatsapp",
        "block_users": {
            "added_users": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "failed_users": [
                {
                    "input": "123",
                    "errors": [
                        {
                            "message": "Re-engagement",
                            "code": 131047,
                            "error_data": {"details": "24h"},
                        }
                    ],
                }
            ],
        },
        "error": {"message": "(#139100) Failed to block/unblock users", "code": 139100},
    }
    result = structure(body, BlockResponse).block_users.result()
    assert result == BlockResult(
        added=(UserRef(input="+16505551234", wa_id="16505551234"),),
        failed=(
            FailedUser(
                input="123",
                errors=(ErrorDetail(code=131047, message="Re-engagement", details="24h"),),
            ),
        ),
    )
    assert not result.ok


@pytest.mark.parametrize(
    "body",
    [
        {
            "data": [{"block_users": [{"input": "1", "wa_id": "1"}, {"input": "2", "wa_id": "2"}]}],
            "paging": {"cursors": {"after": "A", "before": "B"}, "next": "https://x"},
        },
        {
            "data": [
                {"messaging_product": "whatsapp", "wa_id": "1"},
                {"messaging_product": "whatsapp", "wa_id": "2"},
            ],
            "paging": {"cursors": {"after": "A", "before": "B"}, "next": "https://x"},
        },
    ],
    ids=["360dialog", "meta"],
)
def test_both_blocklist_shapes(body: dict[str, Any]) -> None:
    page = structure(body, ListResponse)
    assert [u.wa_id for item in page.data for u in item.users()] == ["1", "2"]
    assert page.next_cursor() == "A"


def test_last_page_has_no_next() -> None:
    body = {"data": [{"wa_id": "1"}], "paging": {"cursors": {"after": "A"}}}
    assert structure(body, ListResponse).next_cursor() is None


def test_onprem_blocklist_strips_suffix() -> None:
    body = {
        "contacts": [{"wa_id": "16315551000@s.whatsapp.net"}],
        "pagination": {"limit": 10, "offset": 0, "total": 1},
    }
    page = structure(body, BlocklistResponse).result()
    assert page.wa_ids == ("16315551000",)
    assert (page.limit, page.offset, page.total) == (10, 0, 1)


def test_contacts_check() -> None:
    body = {
        "contacts": [{"input": "+55123456789", "status": "valid", "wa_id": "55123456789"}],
        "meta": {"api_status": "stable", "version": "2.35.4"},
    }
    assert structure(body, ContactsResponse).contacts == (
        ContactStatus(input="+55123456789", status="valid", wa_id="55123456789"),
    )


def test_partner_envelopes() -> None:
    block = {
        "meta": {"developer_message": "ok", "http_code": 200, "success": True},
        "status_code": 200,
        "data": {
            "messaging_product": "whatsapp",
            "block_users": {"removed_users": [{"input": "1", "wa_id": "1"}]},
        },
    }
    assert structure(block, PartnerBlockEnvelope).data.block_users.result() == BlockResult(
        removed=(UserRef(input="1", wa_id="1"),)
    )
    listing = {
        "meta": {},
        "status_code": 200,
        "data": {"block_users": [{"input": "1", "wa_id": "1"}]},
    }
    assert structure(listing, PartnerListEnvelope).data.block_users == (
        UserRef(input="1", wa_id="1"),
    )


@pytest.mark.parametrize("body", [None, [], {"messages": []}, {"messages": [{"no_id": 1}]}, "x"])
def test_malformed_success_body_is_an_api_error(body: Any) -> None:
    with pytest.raises(APIError, match="unexpected response body") as info:
        structure_response(body, SendResponse, status=200, request="POST /messages")
    assert info.value.status == 200


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["messages", "contacts", "id", "input", "wa_id", "message_status", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@given(json_like)
def test_fast_send_parser_agrees_with_the_converter(data: Any) -> None:
    fast = sent_message(data)
    if fast is not None:  # whenever the fast path answers, the converter says the same
        assert fast == structure(data, SendResponse).result()


def test_fast_send_parser_reads_the_documented_answer() -> None:
    data = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+1", "wa_id": "1"}],
        "messages": [{"id": "wamid.A", "message_status": "accepted"}],
    }
    assert sent_message(data) == SentMessage(
        message_id="wamid.A", input="+1", wa_id="1", message_status="accepted"
    )
    assert sent_message({"messages": [{"id": "gBGH"}], "meta": {}}) == SentMessage(
        message_id="gBGH"
    )
    assert sent_message({"messages": []}) is None
