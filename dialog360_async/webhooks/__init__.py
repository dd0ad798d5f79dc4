"""Delivery truth: read 360dialog webhooks (Cloud and On-Premise) and receive them in aiohttp.

::

    from dialog360_async.webhooks import WebhookReceiver

    receiver = WebhookReceiver(on_status=print, auth_headers={"Authorization": secret})
    web.run_app(receiver.app("/webhook"), port=8080)

``parse_webhook(body)`` alone turns a body into a :class:`Notification` of typed
:class:`StatusUpdate` and :class:`InboundMessage` records.
"""

from ._dedup import DEDUP_TTL, MemoryWebhookStore, WebhookStore
from ._errors import WebhookError
from ._models import DedupKey, InboundMessage, Notification, StatusUpdate, WebhookStats
from ._parse import parse_webhook
from ._receiver import MAX_BODY, WebhookReceiver
from ._verify import SIGNATURE_HEADER

__all__ = [
    "DEDUP_TTL",
    "MAX_BODY",
    "SIGNATURE_HEADER",
    "DedupKey",
    "InboundMessage",
    "MemoryWebhookStore",
    "Notification",
    "StatusUpdate",
    "WebhookError",
    "WebhookReceiver",
    "WebhookStats",
    "WebhookStore",
    "parse_webhook",
]
