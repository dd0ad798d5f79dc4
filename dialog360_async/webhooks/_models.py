"""What a webhook says: plain frozen records, tolerant of fields the API adds later."""

from __future__ import annotations

import attrs

from .._results import ErrorDetail

__all__ = ["DedupKey", "InboundMessage", "Notification", "StatusUpdate", "WebhookStats"]

DedupKey = tuple[str, str]
"""``(message_id, status)`` for a status, ``(message_id, "")`` for an inbound message."""


@attrs.frozen(kw_only=True)
class StatusUpdate:
    """A delivery status of one of *our* outbound messages (``sent``, ``delivered``, ...)."""

    message_id: str
    """The ``wamid.…`` of the outbound message: the join key with ``SentMessage.message_id``."""
    status: str
    """The wire value: ``sent``, ``delivered``, ``read``, ``failed``, ``played``, ``deleted``,
    ``warning``, or a newer value verbatim."""
    timestamp: int | None
    """Unix seconds when the status was triggered; None when the payload had no readable one."""
    recipient_id: str | None = None
    callback_data: str | None = None
    """``biz_opaque_callback_data`` as the send carried it (Cloud only)."""
    errors: tuple[ErrorDetail, ...] = ()
    """Why a ``failed`` status failed (``message`` holds the title when there is no message)."""
    category: str | None = None
    """``pricing.category``: ``marketing``, ``utility``, ``service``, ..."""
    billable: bool | None = None
    phone_number_id: str | None = None
    """The business number's id (Cloud ``metadata.phone_number_id``)."""

    @property
    def key(self) -> DedupKey:
        """What makes two deliveries of this status duplicates."""
        return (self.message_id, self.status)


@attrs.frozen(kw_only=True)
class InboundMessage:
    """A message a user sent to the business number."""

    message_id: str
    wa_id: str | None
    """The sender (``from``); None when the payload names the user only by a business-scoped id."""
    type: str
    """``text``, ``button``, ``interactive``, ``image``, ... verbatim."""
    timestamp: int | None
    profile_name: str | None = None
    text: str | None = None
    """The text the user sent or tapped: ``text.body``, a button's or a reply's title."""
    context_id: str | None = None
    """The wamid of our message this one answers (``context.id``): evidence it was delivered."""
    phone_number_id: str | None = None

    @property
    def key(self) -> DedupKey:
        """What makes two deliveries of this message duplicates."""
        return (self.message_id, "")


@attrs.frozen(kw_only=True)
class Notification:
    """Everything one webhook body carried, in payload order."""

    statuses: tuple[StatusUpdate, ...] = ()
    messages: tuple[InboundMessage, ...] = ()
    errors: tuple[ErrorDetail, ...] = ()
    """Errors not tied to one status (Cloud ``value.errors``, On-Premise top-level ``errors``)."""
    skipped: int = 0
    """Statuses and messages left out because they lacked an id or a status."""


@attrs.frozen(kw_only=True)
class WebhookStats:
    """What the receiver has done since it was made. Items are statuses plus messages."""

    received: int = 0
    """Bodies that passed authentication and the size cap."""
    invalid: int = 0
    """Of those, bodies that were no webhook (answered 200, ignored)."""
    rejected: int = 0
    """Requests answered 401 (authentication) or 413 (too large)."""
    deferred: int = 0
    """Webhooks answered 503 (queue full, or receiver not running): 360dialog redelivers them."""
    store_errors: int = 0
    """Webhooks answered 500 because the store's ``record_webhook`` raised."""
    statuses: int = 0
    messages: int = 0
    skipped: int = 0
    """Statuses and messages left out of their batch as malformed."""
    errors: int = 0
    """Error objects not tied to a status (logged as warnings)."""
    duplicates: int = 0
    """Items the store had already seen: not dispatched again."""
    dispatched: int = 0
    """Callback calls started."""
    callback_errors: int = 0
    """Callback calls that raised (each logged with its traceback)."""
    abandoned: int = 0
    """Items whose callback had not run, or was cancelled, when the receiver stopped."""
