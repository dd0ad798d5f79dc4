"""``parse_webhook``: both payload shapes, every status of every change of every entry.

Hand-written over the decoded dicts (no converter): this runs once per POST on the receiver's
hot path, and a lenient walk that skips what it cannot read is simpler than a schema.
Shapes: ../shared/docs/webhooks-and-statuses.md §1 (Cloud: Meta's envelope; On-Premise: flat).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .._json import loads
from .._results import ErrorDetail
from ._errors import WebhookError
from ._models import InboundMessage, Notification, StatusUpdate

__all__ = ["parse_webhook"]

_FLAT = ("statuses", "messages", "errors", "contacts")
_MAX_DIGITS = 20  # int() of a huge digit string is slow, and refused past 4300 digits

Body = bytes | bytearray | memoryview | str | Mapping[str, Any]


def parse_webhook(body: Body) -> Notification:
    """Read a webhook body of either API into a :class:`Notification`.

    Cloud (Meta's ``entry[].changes[].value`` envelope) and On-Premise (flat ``statuses[]``,
    ``messages[]``) are told apart by their shape. Unknown fields, unknown status values and
    other ``changes[].field`` kinds are tolerated; a status or message without an id (or a
    status without a status) is skipped and counted in ``Notification.skipped``.

    Args:
        body: the raw body (bytes or str) or the already decoded JSON object.

    Raises:
        WebhookError: the body is not JSON, not an object, or shaped like neither API.
    """
    data: Any
    if type(body) is bytes or isinstance(body, str):
        data = _decode(body)
    elif isinstance(body, Mapping):
        data = body
    elif isinstance(body, bytes | bytearray | memoryview):
        data = _decode(bytes(body))
    else:
        raise WebhookError(f"a webhook body is bytes, str or a mapping, not {type(body).__name__}")
    if type(data) is not dict and not isinstance(data, Mapping):
        raise WebhookError("a webhook body is a JSON object")
    entries = data.get("entry")
    if isinstance(entries, list):
        return _cloud(entries)
    if any(isinstance(data.get(name), list) for name in _FLAT):
        return _collect(((data, None),))
    raise WebhookError("not a webhook: neither entry[] (Cloud API) nor statuses[] / messages[]")


def _decode(raw: bytes | str) -> Any:
    try:
        return loads(raw)
    except ValueError:
        raise WebhookError("a webhook body is JSON") from None


def _cloud(entries: list[Any]) -> Notification:
    values: list[tuple[Mapping[str, Any], str | None]] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                metadata = value.get("metadata")
                phone = (
                    _text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
                )
                values.append((value, phone))
    return _collect(values)


def _collect(values: Iterable[tuple[Mapping[str, Any], str | None]]) -> Notification:
    """Every status, message and error of ``(container, phone_number_id)`` pairs, in order."""
    statuses: list[StatusUpdate] = []
    messages: list[InboundMessage] = []
    errors: list[ErrorDetail] = []
    skipped = 0
    for value, phone in values:
        raw_statuses = value.get("statuses")
        if isinstance(raw_statuses, list):
            for raw in raw_statuses:
                status = _status(raw, phone)
                if status is None:
                    skipped += 1
                else:
                    statuses.append(status)
        raw_messages = value.get("messages")
        if isinstance(raw_messages, list) and raw_messages:
            names, only = _names(value.get("contacts"))
            for raw in raw_messages:
                message = _message(raw, phone, names, only)
                if message is None:
                    skipped += 1
                else:
                    messages.append(message)
        raw_errors = value.get("errors")
        if isinstance(raw_errors, list):
            errors.extend(_errors(raw_errors))
    return Notification(
        statuses=tuple(statuses), messages=tuple(messages), errors=tuple(errors), skipped=skipped
    )


def _status(raw: Any, phone: str | None) -> StatusUpdate | None:
    if type(raw) is not dict:
        return None
    get = raw.get
    message_id = get("id")
    status = get("status")
    if not (type(message_id) is str and message_id and type(status) is str and status):
        return None
    recipient = get("recipient_id")
    if type(recipient) is not str or not recipient:  # On-Premise since v2.45: message{}
        message = get("message")
        recipient = _text(message.get("recipient_id")) if type(message) is dict else None
    callback = get("biz_opaque_callback_data")
    pricing = get("pricing")
    category = billable = None
    if type(pricing) is dict:
        category = _text(pricing.get("category"))
        billable = pricing.get("billable")
        if type(billable) is not bool:
            billable = None
    raw_errors = get("errors")
    return StatusUpdate(
        message_id=message_id,
        status=status,
        timestamp=_int(get("timestamp")),
        recipient_id=recipient,
        callback_data=callback if type(callback) is str and callback else None,
        errors=tuple(_errors(raw_errors)) if type(raw_errors) is list and raw_errors else (),
        category=category,
        billable=billable,
        phone_number_id=phone,
    )


def _names(contacts: Any) -> tuple[dict[str, str], str | None]:
    """Profile names by wa_id, and the name of the only contact (for a message with no ``from``)."""
    names: dict[str, str] = {}
    only = None
    if isinstance(contacts, list):
        for contact in contacts:
            profile = contact.get("profile") if isinstance(contact, dict) else None
            name = _text(profile.get("name")) if isinstance(profile, dict) else None
            if name is None:
                continue
            wa_id = _text(contact.get("wa_id"))
            if wa_id is not None:
                names[wa_id] = name
            only = name if len(contacts) == 1 else None
    return names, only


def _message(
    raw: Any, phone: str | None, names: dict[str, str], only: str | None
) -> InboundMessage | None:
    if not isinstance(raw, dict):
        return None
    message_id = raw.get("id")
    kind = raw.get("type")
    if not (type(message_id) is str and message_id and type(kind) is str and kind):
        return None
    wa_id = _text(raw.get("from"))
    context = raw.get("context")
    return InboundMessage(
        message_id=message_id,
        wa_id=wa_id,
        type=kind,
        timestamp=_int(raw.get("timestamp")),
        profile_name=names.get(wa_id) if wa_id is not None else only,
        text=_said(raw.get(kind), kind),
        context_id=_text(context.get("id")) if isinstance(context, dict) else None,
        phone_number_id=phone,
    )


def _said(body: Any, kind: str) -> str | None:
    """The text of a message: a text's body, a tapped button's or reply's title, a caption."""
    if not isinstance(body, dict):
        return None
    if kind == "text":
        return _text(body.get("body"))
    if kind == "button":
        return _text(body.get("text"))
    if kind == "interactive":
        for name in ("button_reply", "list_reply"):
            reply = body.get(name)
            if isinstance(reply, dict):
                return _text(reply.get("title"))
        return None
    return _text(body.get("caption"))


def _errors(raw_errors: list[Any]) -> list[ErrorDetail]:
    # Cloud: {code, title, message, error_data{details}}; On-Premise: {code, title, details}.
    found = []
    for raw in raw_errors:
        if not isinstance(raw, dict):
            continue
        code = raw.get("code")
        if type(code) is not int:
            code = _int(code) if type(code) is str else None
        data = raw.get("error_data")
        details = _text(data.get("details")) if isinstance(data, dict) else None
        found.append(
            ErrorDetail(
                code=code,
                message=_text(raw.get("message")) or _text(raw.get("title")),
                details=details or _text(raw.get("details")),
            )
        )
    return found


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _int(value: Any) -> int | None:
    """A timestamp or code from the wire's digit string (or a number); None when unreadable."""
    if type(value) is str:
        if 0 < len(value) <= _MAX_DIGITS and value.isascii() and value.isdigit():
            return int(value)
        return None
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return int(value)
    return None
