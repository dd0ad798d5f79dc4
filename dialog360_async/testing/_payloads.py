"""The bodies the fake POSTs to webhook URLs: Cloud's Meta envelope and On-Premise's flat shape.

Shapes: ../shared/docs/webhooks-and-statuses.md §1.1-1.7 (the example payloads of §1.7 are the
model), error objects §1.4, failure codes §5, the signature §2.3.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from ._delivery import Api

__all__ = ["Layout", "ChannelIds", "cloud_body", "inbound", "on_prem_body", "sign", "status"]

Layout = Literal["change", "changes", "entries"]
"""How a Cloud batch is laid out: every item in one change, one change per item, or one entry
per item (Meta does all three: receivers must read every entry, change and status)."""

SIGNATURE_HEADER: Final = "x-360dialog-signature"
_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
_WINDOW = (
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number."
)
_ECOSYSTEM = "This message was not delivered to maintain healthy ecosystem engagement."
_OPTED_OUT = (
    "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
    "messages on WhatsApp from your business."
)
# code -> (title, details); titles as Meta words them (§5), details as error_data shows them.
_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    131026: ("Message undeliverable", "Message Undeliverable."),
    131047: ("Re-engagement message", _WINDOW),
    131049: (
        _ECOSYSTEM,
        "In order to maintain healthy ecosystem engagement, the message failed to be delivered.",
    ),
    131050: (_OPTED_OUT, _OPTED_OUT),
    130472: (
        "User's number is part of an experiment",
        "Failed to send message because this user's phone number is part of an experiment.",
    ),
    470: (_WINDOW.rstrip("."), _WINDOW),
    1026: ("Receiver Incapable", "Message undeliverable."),
}
_UNKNOWN = ("Message failed to send", "Message failed to send.")


class ChannelIds:
    """The Meta ids a channel's Cloud webhooks carry (WABA id, phone-number id, number)."""

    __slots__ = ("display_phone_number", "phone_number_id", "waba_id")

    def __init__(self, serial: int) -> None:
        self.waba_id = f"1048576{serial:08d}"
        self.phone_number_id = f"1100000{serial:08d}"
        self.display_phone_number = f"4915100{serial:06d}"

    def metadata(self) -> dict[str, str]:
        return {
            "display_phone_number": self.display_phone_number,
            "phone_number_id": self.phone_number_id,
        }


def error(api: Api, code: int) -> dict[str, Any]:
    """The ``errors[]`` item of a failed status (Cloud: §1.4 shape; On-Premise: flat)."""
    title, details = _ERRORS.get(code, _UNKNOWN)
    if api == "on_premise":
        return {"code": code, "title": title, "details": details}
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": _HREF,
    }


def status(
    api: Api,
    *,
    message_id: str,
    value: str,
    wa_id: str,
    timestamp: int,
    callback_data: str | None,
    code: int | None,
    template: bool,
) -> dict[str, Any]:
    """One ``statuses[]`` item; ``pricing`` (and On-Premise ``conversation``) on the
    ``sent`` and ``delivered`` statuses only, as Meta sends them (§1.2)."""
    item: dict[str, Any] = {
        "id": message_id,
        "status": value,
        "timestamp": str(timestamp),
        "recipient_id": wa_id,
    }
    priced = value in ("sent", "delivered")
    if api == "on_premise":
        item["type"] = "message"
        item["message"] = {"recipient_id": wa_id}
        if priced:
            origin = "business_initiated" if template else "user_initiated"
            conversation: dict[str, Any] = {
                "id": hashlib.blake2s(message_id.encode(), digest_size=16).hexdigest(),
                "origin": {"type": origin},
            }
            if value == "sent":
                conversation["expiration_timestamp"] = str(timestamp + 86_400)
            item["conversation"] = conversation
            item["pricing"] = {"billable": template, "pricing_model": "CBP", "category": origin}
    else:
        if callback_data is not None:
            item["biz_opaque_callback_data"] = callback_data
        if priced:
            item["pricing"] = {
                "billable": template,
                "pricing_model": "PMP",
                "type": "regular" if template else "free_customer_service",
                "category": "marketing" if template else "service",
            }
    if code is not None:
        item["errors"] = [error(api, code)]
    return item


def cloud_body(
    ids: ChannelIds, key: Literal["statuses", "messages"], items: Sequence[Any], layout: Layout
) -> dict[str, Any]:
    """Cloud's envelope around ``items`` (``contacts`` go with ``messages`` items, paired)."""

    def value(chunk: Sequence[Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": ids.metadata()}
        if key == "messages":
            body["contacts"] = [contact for contact, _ in chunk]
            body["messages"] = [message for _, message in chunk]
        else:
            body["statuses"] = list(chunk)
        return body

    def change(chunk: Sequence[Any]) -> dict[str, Any]:
        return {"field": "messages", "value": value(chunk)}

    if layout == "change" or len(items) == 1:
        entries = [{"id": ids.waba_id, "changes": [change(items)]}]
    elif layout == "changes":
        entries = [{"id": ids.waba_id, "changes": [change([item]) for item in items]}]
    else:
        entries = [{"id": ids.waba_id, "changes": [change([item])]} for item in items]
    return {"object": "whatsapp_business_account", "entry": entries}


def on_prem_body(key: Literal["statuses", "messages"], items: Sequence[Any]) -> dict[str, Any]:
    """On-Premise's flat body."""
    if key == "messages":
        return {
            "contacts": [contact for contact, _ in items],
            "messages": [message for _, message in items],
        }
    return {"statuses": list(items)}


def inbound(
    *, wa_id: str, name: str, text: str, message_id: str, timestamp: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(contact, message)`` of a user's text message (the same in both shapes)."""
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    message = {
        "from": wa_id,
        "id": message_id,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": text},
    }
    return contact, message


def sign(secret: bytes, body: bytes, prefix: str) -> str:
    """The ``x-360dialog-signature`` value: HMAC-SHA256 of the raw body, hex (§2.3)."""
    return prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()
