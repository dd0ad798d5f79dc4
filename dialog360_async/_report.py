"""What a campaign's messages became: the sends, then the delivery statuses that came back."""

from __future__ import annotations

import attrs

__all__ = ["DeliveryReport", "FailureCount"]


@attrs.frozen(kw_only=True)
class FailureCount:
    """How many messages ended one way for one reason.

    Attributes:
        status: the outcome it counts: ``"failed"``, ``"cancelled"`` or ``"unknown"`` in a
            bulk run; ``"failed"`` (the send) or ``"undelivered"`` (a ``failed`` status
            webhook) in a delivery report.
        reason: a short stable word: ``authentication``, ``permission``, ``unreachable``,
            ``throttled``, ``spam-limit``, ``account-locked``, ``channel-disabled``,
            ``not-engaged``, ``invalid-parameter``, ``server-error``, ``in-doubt``,
            ``transport``, ``invalid-input``, ``journal``, ``duplicate``, ``interrupted``,
            ``undelivered``, ``other``. An undelivered status's reason is its code's word
            (e.g. ``not-engaged`` for 131047) or ``undelivered``.
        code: the API's error code, if there was one.
        meaning: what the code means, or the error's title.
        count: messages.
    """

    status: str
    reason: str
    code: int | None
    meaning: str
    count: int

    def __str__(self) -> str:
        code = "" if self.code is None else f" {self.code}"
        meaning = f": {self.meaning}" if self.meaning else ""
        return f"{self.count} {self.status} ({self.reason}{code}{meaning})"


@attrs.frozen(kw_only=True)
class DeliveryReport:
    """The delivery funnel of one campaign, from its broadcast store.

    Every message of the campaign is in exactly one of ``accepted``, ``unknown_settled``,
    ``unknown``, ``rejected``, ``cancelled`` and ``pending`` (their sum is ``messages``); the
    statuses then split what reached WhatsApp (``sent``) into ``delivered`` (``read``
    included), ``undelivered`` and neither yet (``unconfirmed`` past the horizon). A message
    can be both delivered and undelivered: on several devices a ``delivered`` may follow a
    ``failed``, and the failure is kept.

    Attributes:
        campaign: the campaign's name.
        messages: messages recorded for the campaign.
        accepted: sends the API answered with a message id.
        unknown_settled: sends in doubt that a status webhook showed to have been sent.
        unknown: sends still in doubt (no answer and no status for their callback tag), and
            records that cannot be read.
        rejected: sends that failed (the API refused, or they could not be made).
        cancelled: messages taken but never sent.
        pending: claimed and not settled, no status yet (a run in progress, or a crash).
        sent: ``accepted + unknown_settled``: what reached WhatsApp.
        delivered: of those, delivered to the phone (``read`` and ``played`` included).
        read: of those, read (``played`` included).
        undelivered: of ``sent``, a ``failed`` status came back (kept even if a later
            ``delivered`` arrived).
        unconfirmed: of ``sent``, neither delivered nor undelivered ``horizon`` seconds after
            the send (a ``sent`` status alone confirms nothing: Meta holds messages for
            offline users up to 30 days).
        failures: ``rejected`` and ``undelivered`` by reason and code, largest first.
        orphans: message ids with statuses no message of the store names (yet), kept for
            7 days: those whose callback tag names this campaign, and those without a tag.
        horizon: the seconds after which a send without a status is ``unconfirmed``.
        generated_at: Unix time of the report.
    """

    campaign: str
    messages: int
    accepted: int
    unknown_settled: int
    unknown: int
    rejected: int
    cancelled: int
    pending: int
    sent: int
    delivered: int
    read: int
    undelivered: int
    unconfirmed: int
    failures: tuple[FailureCount, ...] = ()
    orphans: int = 0
    horizon: float = 3600.0
    generated_at: float = 0.0
