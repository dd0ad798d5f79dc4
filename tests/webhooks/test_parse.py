"""parse_webhook on real-shaped bodies of both APIs, and on anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialog360_async import ErrorDetail
from dialog360_async.errors import Dialog360Error
from dialog360_async.webhooks import (
    InboundMessage,
    Notification,
    StatusUpdate,
    WebhookError,
    parse_webhook,
)

from .payloads import (
    CLOUD_BATCH,
    CLOUD_BUTTON,
    CLOUD_FAILED,
    CLOUD_SENT,
    ONPREM_FAILED,
    PHONE_ID,
    WAMID_A,
    WAMID_B,
    cloud,
    onprem,
    status,
)

ENGAGEMENT = "This message was not delivered to maintain healthy ecosystem engagement."


def test_cloud_sent_reads_every_field() -> None:
    note = parse_webhook(CLOUD_SENT)
    assert note == Notification(
        statuses=(
            StatusUpdate(
                message_id=WAMID_A,
                status="sent",
                timestamp=1767225600,
                recipient_id="4917600000001",
                callback_data="b:2026-01-spring|r:00042|h:9f2c",
                category="marketing",
                billable=True,
                phone_number_id=PHONE_ID,
            ),
        )
    )


def test_cloud_failed_carries_its_error() -> None:
    (failed,) = parse_webhook(CLOUD_FAILED).statuses
    assert failed.message_id == WAMID_B
    assert failed.status == "failed"
    assert failed.callback_data == "b:2026-01-spring|r:00043|h:11aa"
    assert failed.errors == (
        ErrorDetail(
            code=131049,
            message=ENGAGEMENT,
            details="In order to maintain healthy ecosystem engagement, the message failed to "
            "be delivered.",
        ),
    )
    assert failed.billable is None
    assert failed.category is None


def test_cloud_batch_keeps_both_statuses_in_order() -> None:
    read, delivered = parse_webhook(CLOUD_BATCH).statuses
    assert (read.message_id, read.status, read.timestamp) == ("wamid.AAA", "read", 1767225700)
    assert (delivered.message_id, delivered.status) == ("wamid.BBB", "delivered")
    assert (delivered.billable, delivered.category) == (False, "service")


def test_every_status_of_every_change_of_every_entry() -> None:
    # Peers read only the first status of the first change: here are 7 over 2 entries.
    changes = [
        [status("w1", "sent"), status("w2", "sent"), status("w3", "delivered")],
        [status("w1", "delivered")],
        [status("w4", "read"), status("w2", "failed")],
        [status("w5", "played")],
    ]
    body = cloud(*changes, entries=2)
    assert len(body["entry"]) == 2
    got = [(s.message_id, s.status) for s in parse_webhook(body).statuses]
    assert sorted(got) == sorted((s["id"], s["status"]) for change in changes for s in change)
    assert len(got) == 7


def test_cloud_inbound_button_tap() -> None:
    note = parse_webhook(CLOUD_BUTTON)
    assert note.statuses == ()
    assert note.messages == (
        InboundMessage(
            message_id="wamid.CCC",
            wa_id="4917600000001",
            type="button",
            timestamp=1767226000,
            profile_name="Ana",
            text="Stop promotions",
            context_id=WAMID_A,
            phone_number_id=PHONE_ID,
        ),
    )


@pytest.mark.parametrize(
    ("kind", "content", "text"),
    [
        ("text", {"body": "hello"}, "hello"),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "1", "title": "Yes"}},
            "Yes",
        ),
        ("interactive", {"type": "list_reply", "list_reply": {"id": "2", "title": "Blue"}}, "Blue"),
        ("image", {"id": "media1", "mime_type": "image/jpeg", "caption": "look"}, "look"),
        ("location", {"latitude": 1.5, "longitude": 2.5}, None),
        ("some_new_type", "not an object", None),
    ],
)
def test_cloud_inbound_text_of_each_type(kind: str, content: Any, text: str | None) -> None:
    value = {
        "messages": [
            {"from": "491", "id": "wamid.M", "timestamp": "5", "type": kind, kind: content}
        ]
    }
    (message,) = parse_webhook(cloud([], messages=value["messages"])).messages
    assert (message.type, message.text, message.wa_id) == (kind, text, "491")


def test_onprem_failed_status() -> None:
    note = parse_webhook(ONPREM_FAILED)
    assert note.statuses == (
        StatusUpdate(
            message_id="gBEGSRcgNWBvAgk1aXhcY8OIe6Q",
            status="failed",
            timestamp=1767226100,
            recipient_id="4917600000004",
            errors=(
                ErrorDetail(
                    code=470,
                    message="Message failed to send because more than 24 hours have passed "
                    "since the customer last replied",
                ),
            ),
        ),
    )


def test_onprem_recipient_from_message_object_and_details_at_top_level() -> None:
    raw = status("gB1", "failed", message={"recipient_id": "4917"})
    raw["errors"] = [{"code": 1026, "title": "Undeliverable", "details": "not on WhatsApp"}]
    (got,) = parse_webhook(onprem([raw])).statuses
    assert got.recipient_id == "4917"
    assert got.errors == (
        ErrorDetail(code=1026, message="Undeliverable", details="not on WhatsApp"),
    )


def test_onprem_inbound_text_with_contact() -> None:
    body = {
        "contacts": [{"profile": {"name": "Bo"}, "wa_id": "4917600000009"}],
        "messages": [
            {
                "from": "4917600000009",
                "id": "ABGGFlA5FpafAgo6EhVA",
                "timestamp": "1767226200",
                "type": "text",
                "text": {"body": "where is my order?"},
                "context": {"from": "4915100000000", "id": "gBEGSRcgNWBvAgk1aXhcY8OIe6Q"},
            }
        ],
    }
    assert parse_webhook(body).messages == (
        InboundMessage(
            message_id="ABGGFlA5FpafAgo6EhVA",
            wa_id="4917600000009",
            type="text",
            timestamp=1767226200,
            profile_name="Bo",
            text="where is my order?",
            context_id="gBEGSRcgNWBvAgk1aXhcY8OIe6Q",
        ),
    )


def test_system_message_without_contacts_or_sender() -> None:
    body = cloud([], messages=[{"id": "wamid.S", "type": "system", "system": {"body": "changed"}}])
    (message,) = parse_webhook(body).messages
    assert (message.wa_id, message.profile_name, message.timestamp) == (None, None, None)


@pytest.mark.parametrize(
    "value",
    ["sent", "delivered", "read", "failed", "played", "deleted", "warning", "held_for_review_v99"],
)
@pytest.mark.parametrize("shape", ["cloud", "onprem"])
def test_every_status_value_is_kept_verbatim(value: str, shape: str) -> None:
    raw = status("wamid.V", value)
    body = cloud([raw]) if shape == "cloud" else onprem([raw])
    (got,) = parse_webhook(body).statuses
    assert got.status == value


def test_unknown_fields_are_ignored() -> None:
    plain = json.loads(CLOUD_SENT)
    noisy = json.loads(CLOUD_SENT)
    noisy["future_top"] = {"x": [1, 2]}
    noisy["entry"][0]["time"] = 1767225600
    change = noisy["entry"][0]["changes"][0]
    change["extra"] = None
    change["value"]["user_preferences"] = [{"preference": "stop"}]
    item = change["value"]["statuses"][0]
    item.update(
        recipient_type="group",
        recipient_identity_key_hash="abc",
        conversation={"id": "c1", "origin": {"type": "marketing"}, "expiration_timestamp": "9"},
        brand_new={"nested": [True]},
    )
    item["pricing"]["new_field"] = 3
    assert parse_webhook(noisy) == parse_webhook(plain)


def test_missing_optional_fields() -> None:
    (got,) = parse_webhook(onprem([{"id": "w", "status": "delivered"}])).statuses
    assert got == StatusUpdate(message_id="w", status="delivered", timestamp=None)


def test_wrongly_typed_optional_fields_become_none() -> None:
    raw = {
        "id": "w",
        "status": "read",
        "timestamp": "12a",
        "recipient_id": 4917,
        "biz_opaque_callback_data": {"not": "a string"},
        "pricing": {"billable": "yes", "category": 7},
        "errors": [{"code": "131026", "title": "Undeliverable"}, "junk", {"code": True}],
    }
    (got,) = parse_webhook(cloud([raw])).statuses
    assert got == StatusUpdate(
        message_id="w",
        status="read",
        timestamp=None,
        errors=(ErrorDetail(code=131026, message="Undeliverable"), ErrorDetail()),
        phone_number_id=PHONE_ID,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1767225600", 1767225600),
        ("9" * 5000, None),
        ("", None),
        ("١٢", None),
        (1767225600, 1767225600),
        (1.5e9, 1500000000),
        (float("nan"), None),
        (True, None),
        (None, None),
    ],
)
def test_timestamps(raw: Any, expected: int | None) -> None:
    (got,) = parse_webhook({"statuses": [{"id": "w", "status": "sent", "timestamp": raw}]}).statuses
    assert got.timestamp == expected


def test_malformed_items_are_skipped_and_counted_not_the_batch() -> None:
    statuses = [
        status("w1", "sent"),
        {"status": "sent"},
        {"id": "w2"},
        {"id": "", "status": "read"},
        {"id": 5, "status": "read"},
        "not an object",
        None,
        status("w3", "read"),
    ]
    messages = [{"id": "m1", "type": "text"}, {"type": "text"}, {"id": "m2"}, [1]]
    note = parse_webhook(cloud(statuses, messages=messages))
    assert [s.message_id for s in note.statuses] == ["w1", "w3"]
    assert [m.message_id for m in note.messages] == ["m1"]
    assert note.skipped == 6 + 3


def test_out_of_band_errors() -> None:
    error = {"code": 131000, "title": "Something went wrong", "error_data": {"details": "x"}}
    assert parse_webhook(cloud([], errors=[error])).errors == (
        ErrorDetail(code=131000, message="Something went wrong", details="x"),
    )
    assert parse_webhook({"errors": [{"code": 1014, "title": "Internal"}]}).errors == (
        ErrorDetail(code=1014, message="Internal"),
    )


def test_other_fields_and_empty_batches_are_webhooks_with_nothing_in_them() -> None:
    template = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
                    "junk",
                    {"field": "messages"},
                ],
            },
            "junk",
            {"id": "2"},
        ],
    }
    bodies: list[dict[str, Any]] = [template, {"entry": []}, {"statuses": []}, {"contacts": []}]
    for body in bodies:
        assert parse_webhook(body) == Notification()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"{}",
        b'{"object": "whatsapp_business_account"}',
        b'{"entry": {"not": "a list"}}',
        b'{"statuses": "nope", "messages": 3}',
        b'{"hello": "world"}',
        '{"statuses": [1e999]}',
        b"[" * 100_000,
        12,
        None,
        ["statuses"],
    ],
)
def test_no_webhook_raises_webhook_error(body: Any) -> None:
    with pytest.raises(WebhookError) as caught:
        parse_webhook(body)
    assert isinstance(caught.value, Dialog360Error)
    assert isinstance(caught.value, ValueError)


def test_bytes_str_and_mapping_inputs_agree() -> None:
    raw = CLOUD_BATCH.encode()
    expected = parse_webhook(raw)
    assert len(expected.statuses) == 2
    for body in (CLOUD_BATCH, json.loads(CLOUD_BATCH), bytearray(raw), memoryview(raw)):
        assert parse_webhook(body) == expected


def test_webhook_error_pickles() -> None:
    import pickle

    error = WebhookError("a webhook body is JSON")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is WebhookError
    assert str(again) == str(error)


# Hypothesis: whatever JSON arrives, only WebhookError escapes.

_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
_words = st.sampled_from(
    ["id", "status", "timestamp", "recipient_id", "message", "errors", "code", "title",
     "error_data", "details", "pricing", "billable", "category", "biz_opaque_callback_data",
     "from", "type", "text", "body", "context", "contacts", "profile", "name", "wa_id",
     "button", "interactive", "button_reply", "caption", "metadata", "phone_number_id"]
)  # fmt: skip
# The real key names with arbitrary values, so the walk reaches every branch.
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_words | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
_named = st.text(min_size=1, max_size=3) | _leaf
_item = st.fixed_dictionaries(
    {"id": _named, "status": _named, "type": _named},
    optional={
        "timestamp": st.integers().map(str) | _json,
        "errors": st.lists(st.dictionaries(_words, _json | st.integers()), max_size=2) | _json,
        "pricing": st.dictionaries(_words, _json) | _json,
        "message": st.dictionaries(_words, _json) | _json,
        "recipient_id": _json, "from": _json, "text": _json, "button": _json,
        "interactive": _json, "context": _json, "biz_opaque_callback_data": _json,
    },
)  # fmt: skip
_items = st.lists(_item, max_size=3) | st.lists(_json, max_size=2) | _json
_value = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(("statuses", "messages", "contacts", "errors", "metadata"), _items)
)
_change = st.fixed_dictionaries({"value": _value | _json}, optional={"field": _json})
_entry = st.fixed_dictionaries({"changes": st.lists(_change, max_size=2) | _json})
_bodies = st.one_of(
    st.builds(lambda entries: {"object": "whatsapp_business_account", "entry": entries},
              st.lists(_entry | _json, max_size=2)),
    _value,
    _json,
)  # fmt: skip


def _check(body: Any) -> None:
    try:
        note = parse_webhook(body)
    except WebhookError:
        return
    assert isinstance(note, Notification)
    for item in note.statuses:
        assert isinstance(item.message_id, str) and item.message_id
        assert isinstance(item.status, str) and item.status
        assert item.timestamp is None or isinstance(item.timestamp, int)
        assert all(isinstance(error, ErrorDetail) for error in item.errors)
    for message in note.messages:
        assert isinstance(message.message_id, str) and isinstance(message.type, str)


@settings(max_examples=120, deadline=None)
@given(_bodies)
def test_arbitrary_json_only_ever_raises_webhook_error(body: Any) -> None:
    _check(body)
    _check(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes_only_ever_raise_webhook_error(body: bytes | str) -> None:
    _check(body)


_small = _leaf | st.lists(_leaf, max_size=2) | st.dictionaries(_words, _leaf, max_size=3)
_good = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=5), "status": st.text(min_size=1, max_size=5)},
    optional={
        "timestamp": st.integers().map(str) | _leaf,
        "errors": st.lists(st.dictionaries(_words, _leaf), max_size=2) | _leaf,
        "pricing": _small,
        "message": _small,
        "recipient_id": _leaf,
        "biz_opaque_callback_data": _leaf,
        "unknown": _small,
    },
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_good | _small, max_size=6), st.booleans())
def test_every_status_with_an_id_and_a_status_is_kept_in_order(raw: list[Any], flat: bool) -> None:
    body = onprem(raw) if flat else cloud(raw)
    note = parse_webhook(json.dumps(body).encode())
    good = [item for item in raw if _is_status(item)]
    assert [(s.message_id, s.status) for s in note.statuses] == [
        (item["id"], item["status"]) for item in good
    ]
    assert note.skipped == len(raw) - len(good)


def _is_status(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and bool(item["id"])
        and isinstance(item.get("status"), str)
        and bool(item["status"])
    )
