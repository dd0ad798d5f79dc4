"""Webhook bodies shaped like the real ones (../shared/docs/webhooks-and-statuses.md §1.7),
and builders for batches of statuses in either API's shape."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

WABA = "104857600000001"
PHONE_ID = "110000000000001"
METADATA = {"display_phone_number": "4915100000000", "phone_number_id": PHONE_ID}
WAMID_A = "wamid.HBgLNDkxNTEwMDAwMDAwFQIAERgSQUJDMTIzNDU2Nzg5MEFCQ0RFRgA="
WAMID_B = "wamid.HBgLNDkxNTEwMDAwMDAwFQIAERgSWFlaOTg3NjU0MzIxMFpZWFdWVQA="

# (a) Cloud, sent, template, with tracking data and per-message pricing.
CLOUD_SENT = """{"object":"whatsapp_business_account","entry":[{"id":"104857600000001","changes":[
{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"4915100000000","phone_number_id":"110000000000001"},
"statuses":[{"id":"wamid.HBgLNDkxNTEwMDAwMDAwFQIAERgSQUJDMTIzNDU2Nzg5MEFCQ0RFRgA=","status":"sent",
"timestamp":"1767225600","recipient_id":"4917600000001",
"biz_opaque_callback_data":"b:2026-01-spring|r:00042|h:9f2c",
"pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}]}}]}]}"""

# (b) Cloud, failed with a per-user marketing cap (no pricing, no conversation).
CLOUD_FAILED = """{"object":"whatsapp_business_account","entry":[{"id":"104857600000001","changes":[
{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"4915100000000","phone_number_id":"110000000000001"},
"statuses":[{"id":"wamid.HBgLNDkxNTEwMDAwMDAwFQIAERgSWFlaOTg3NjU0MzIxMFpZWFdWVQA=",
"status":"failed","timestamp":"1767225662","recipient_id":"4917600000002",
"biz_opaque_callback_data":"b:2026-01-spring|r:00043|h:11aa",
"errors":[{"code":131049,
"title":"This message was not delivered to maintain healthy ecosystem engagement.",
"message":"This message was not delivered to maintain healthy ecosystem engagement.",
"error_data":{"details":
"In order to maintain healthy ecosystem engagement, the message failed to be delivered."},
"href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}]}}]}]}"""

# (c) One POST carrying two statuses; read without a prior delivered is legal.
CLOUD_BATCH = """{"object":"whatsapp_business_account","entry":[{"id":"104857600000001","changes":[
{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"4915100000000","phone_number_id":"110000000000001"},
"statuses":[
{"id":"wamid.AAA","status":"read","timestamp":"1767225700","recipient_id":"4917600000001"},
{"id":"wamid.BBB","status":"delivered","timestamp":"1767225699","recipient_id":"4917600000003",
"pricing":{"billable":false,"pricing_model":"PMP","type":"free_customer_service","category":"service"}}
]}}]}]}"""

# (d) Cloud inbound quick-reply tap on a broadcast template (context.id = our wamid).
CLOUD_BUTTON = """{"object":"whatsapp_business_account","entry":[{"id":"104857600000001","changes":[
{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"4915100000000","phone_number_id":"110000000000001"},
"contacts":[{"profile":{"name":"Ana"},"wa_id":"4917600000001"}],
"messages":[{"from":"4917600000001","id":"wamid.CCC","timestamp":"1767226000","type":"button",
"context":{"from":"4915100000000",
"id":"wamid.HBgLNDkxNTEwMDAwMDAwFQIAERgSQUJDMTIzNDU2Nzg5MEFCQ0RFRgA="},
"button":{"payload":"STOP_PROMOS","text":"Stop promotions"}}]}}]}]}"""

# (e) On-Premise failed (flat shape).
ONPREM_FAILED = """{"statuses":[{"id":"gBEGSRcgNWBvAgk1aXhcY8OIe6Q","status":"failed",
"timestamp":"1767226100","type":"message","message":{"recipient_id":"4917600000004"},
"recipient_id":"4917600000004","errors":[{"code":470,
"title":
"Message failed to send because more than 24 hours have passed since the customer last replied"
}]}]}"""


def status(message_id: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"id": message_id, "status": value, "timestamp": "1767225600", **extra}


def cloud(*changes: Sequence[Any], entries: int = 1, **value: Any) -> dict[str, Any]:
    """A Cloud envelope: each argument is one change's ``statuses[]``, spread over ``entries``."""
    built: list[dict[str, Any]] = [{"id": WABA, "changes": []} for _ in range(entries)]
    for index, statuses in enumerate(changes):
        body = {"messaging_product": "whatsapp", "metadata": METADATA, **value}
        if statuses:
            body["statuses"] = list(statuses)
        built[index % entries]["changes"].append({"field": "messages", "value": body})
    return {"object": "whatsapp_business_account", "entry": built}


def onprem(statuses: Iterable[dict[str, Any]] = (), **top: Any) -> dict[str, Any]:
    return {"statuses": list(statuses), **top}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
