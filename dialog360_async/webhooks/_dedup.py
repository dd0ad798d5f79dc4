"""Where the receiver remembers what it has seen: the ``WebhookStore`` protocol, kept in memory.

360dialog redelivers a webhook that was not answered 200 for up to 7 days, and the payload has
no delivery id, so duplicates are found by content: (wamid, status) for a status, the wamid for
an inbound message (../shared/docs/webhooks-and-statuses.md §2.5).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import attrs

from ..errors import ValidationError
from ._models import DedupKey, Notification

__all__ = ["DEDUP_TTL", "MemoryWebhookStore", "WebhookStore"]

logger = logging.getLogger("dialog360_async.webhooks")

DEDUP_TTL = 7 * 24 * 3600.0
"""Seconds a key is remembered: as long as 360dialog keeps redelivering."""


@runtime_checkable
class WebhookStore(Protocol):
    """What :class:`WebhookReceiver` needs to persist webhooks and drop duplicates.

    ``record_webhook`` is awaited before the receiver answers 200, so when it returns, what it
    recorded must survive a crash (360dialog will not send an acknowledged webhook again), and
    it should be quick (group commits). Contract:

    - it returns ``notification`` with only the statuses and messages whose ``key`` it had not
      recorded in the last 7 days (``errors`` and ``skipped`` unchanged);
    - it is atomic per key: a key in two concurrent calls, or twice in one, is returned once;
    - if it raises, it has recorded nothing: the receiver answers 500 and 360dialog redelivers.
    """

    def record_webhook(self, notification: Notification) -> Awaitable[Notification]:
        """Record ``notification``; return the part of it not recorded before (an ``async
        def``, or a plain method returning an awaitable)."""
        ...


class MemoryWebhookStore:
    """The default store: keys in memory for ``ttl`` seconds, at most ``max_keys`` of them.

    It does not survive a restart. Past ``max_keys`` the oldest keys are forgotten first (a
    warning says so once), which keeps memory flat however many webhooks arrive.
    """

    def __init__(
        self,
        *,
        ttl: float = DEDUP_TTL,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValidationError("MemoryWebhookStore.ttl", "must be a positive number of seconds")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValidationError("MemoryWebhookStore.max_keys", "must be an int >= 1")
        self._ttl = float(ttl)
        self._max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[DedupKey, float] = OrderedDict()  # key -> first seen, oldest first
        self._next_sweep = float("-inf")
        self.evicted = 0
        """Keys forgotten before their ttl because ``max_keys`` was reached."""

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return f"MemoryWebhookStore(keys={len(self._seen)}, max_keys={self._max_keys})"

    async def record_webhook(self, notification: Notification) -> Notification:
        """Return ``notification`` without the statuses and messages seen within ``ttl``."""
        now = self._clock()
        if now >= self._next_sweep:  # at most once a second: a key may live a second longer
            self._next_sweep = now + 1.0
            self._expire(now - self._ttl)
        add = self._add
        statuses = [s for s in notification.statuses if add(s.key, now)]
        messages = [m for m in notification.messages if add(m.key, now)]
        if len(statuses) == len(notification.statuses) and len(messages) == len(
            notification.messages
        ):
            return notification
        return attrs.evolve(notification, statuses=tuple(statuses), messages=tuple(messages))

    def _add(self, key: DedupKey, now: float) -> bool:
        seen = self._seen
        if key in seen:
            return False
        seen[key] = now
        if len(seen) > self._max_keys:
            seen.popitem(last=False)
            if not self.evicted:
                logger.warning(
                    "webhook dedup: more than %d keys within the ttl, forgetting the oldest",
                    self._max_keys,
                )
            self.evicted += 1
        return True

    def _expire(self, horizon: float) -> None:
        seen = self._seen
        while seen:
            key, at = next(iter(seen.items()))
            if at > horizon:
                return
            del seen[key]
