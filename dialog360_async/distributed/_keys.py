"""Names of the Redis keys the extra uses; everything lives under one prefix."""

from __future__ import annotations

import hashlib
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


TAG_PREFIX = f"{PREFIX}r:"
"""What every callback tag of a distributed campaign starts with (see :func:`callback_tag`)."""


def callback_tag(campaign: str, key: str) -> str:
    """The callback tag a Cloud send of ``key`` in ``campaign`` carries (at most 95 characters).

    ``d360r:``, the campaign id, ``:``, then 24 hex digits of a digest of the campaign and key:
    it names the campaign openly and the key without giving it away (keys hold phone numbers).
    The claim records the digest -> key mapping (``CampaignKeys.tags``).
    """
    # A campaign id is printable: the NUL keeps (campaign, key) pairs apart. Hex, not base32:
    # Python's b32encode is a loop in Python, the dearest step of a worker's claim.
    digest = hashlib.blake2b(f"{campaign}\0{key}".encode(), digest_size=12, person=b"d360-key")
    return f"{TAG_PREFIX}{campaign}:{digest.hexdigest()}"


def parse_tag(tag: str | None) -> tuple[str, str] | None:
    """``(campaign, digest)`` of a tag :func:`callback_tag` made, else None."""
    if tag is None or not tag.startswith(TAG_PREFIX):
        return None
    campaign, _, digest = tag[len(TAG_PREFIX) :].partition(":")
    if not _ID.fullmatch(campaign) or len(digest) != 24 or not digest.isalnum():
        return None
    return campaign, digest


def wamid_key(message_id: str) -> str:
    """What Redis knows of one message id: its dedup marks, its campaign and key, its orphans."""
    return f"{PREFIX}:wamid:{message_id}"


def bucket(channel: str) -> str:
    """The shared token bucket of one channel."""
    return f"{PREFIX}:bucket:{channel}"


class CampaignKeys:
    """The keys of one campaign."""

    __slots__ = ("batches", "counts", "done", "id", "ledger", "meta", "tags")

    def __init__(self, campaign: str) -> None:
        self.id = campaign_id(campaign)
        base = f"{PREFIX}:campaign:{campaign}"
        self.meta = f"{base}:meta"
        self.ledger = f"{base}:ledger"
        self.counts = f"{base}:counts"
        self.batches = f"{base}:batches"
        self.done = f"{base}:done"
        self.tags = f"{base}:tags"  # callback tag digest -> message key

    def all(self) -> tuple[str, ...]:
        """Every key, for expiry."""
        return (self.meta, self.ledger, self.counts, self.batches, self.done, self.tags)
