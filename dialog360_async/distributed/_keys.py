"""Names of the Redis keys the extra uses; everything lives under one prefix."""

from __future__ import annotations

import re

from ..errors import ValidationError

PREFIX = "d360"
TASK_NAME = "dialog360_async.send_batch"
CAMPAIGN_TTL = 7 * 24 * 3600
"""Seconds a campaign's state is kept after its last batch was registered or finished."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CHANNEL = re.compile(r"[^\s=,:]{1,100}")


def campaign_id(value: object) -> str:
    """Check a campaign id: 1-64 letters, digits, ``_``, ``.`` or ``-``."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValidationError("campaign_id", f"must be 1-64 of [A-Za-z0-9_.-], got {value!r}")
    return value


def channel_name(value: object) -> str:
    """Check a channel name: 1-100 characters, no whitespace, ``=``, ``,`` or ``:``."""
    if not isinstance(value, str) or not _CHANNEL.fullmatch(value):
        raise ValidationError(
            "channel", f"must be 1-100 characters without spaces, '=', ',' or ':', got {value!r}"
        )
    return value


def bucket(channel: str) -> str:
    """The shared token bucket of one channel."""
    return f"{PREFIX}:bucket:{channel}"


class CampaignKeys:
    """The keys of one campaign."""

    __slots__ = ("batches", "counts", "done", "id", "ledger", "meta")

    def __init__(self, campaign: str) -> None:
        self.id = campaign_id(campaign)
        base = f"{PREFIX}:campaign:{campaign}"
        self.meta = f"{base}:meta"
        self.ledger = f"{base}:ledger"
        self.counts = f"{base}:counts"
        self.batches = f"{base}:batches"
        self.done = f"{base}:done"

    def all(self) -> tuple[str, ...]:
        """Every key, for expiry."""
        return (self.meta, self.ledger, self.counts, self.batches, self.done)
