"""RedisStore: the ``WebhookStore`` of distributed campaigns, merging status webhooks into the
ledger in Redis.

Each ``record_webhook`` is one script call, whatever the notification holds, so one receiver
keeps up with thousands of POSTs a second. The script drops duplicates (``(message id,
status)`` and inbound message ids, remembered ``ttl`` seconds) and merges each new status into
its message's ledger entry by the rules of the SQLite store (design.md "The broadcast store"):
the delivery rank ``sent < delivered < read < played`` only climbs, the first ``failed`` keeps
its code, a status whose message is not known yet is kept as an orphan and applied when a
``sent`` settle or a callback tag names its message id, and an ``unknown`` send counts as
settled only once a status of its own (by message id or callback tag) arrives.

Durability is Redis's: run it with ``appendonly yes`` (``appendfsync always`` to lose no
acknowledged webhook in a power cut). The script runs on one Redis, not a cluster.
"""

from __future__ import annotations

import math

import attrs
from redis.asyncio import Redis

from .._base import AsyncClosing
from ..errors import ValidationError
from ..webhooks._dedup import DEDUP_TTL
from ..webhooks._models import Notification, StatusUpdate
from . import _lua
from ._keys import PREFIX, parse_tag
from ._redis import connect, retrying

__all__ = ["RedisStore"]

# A short outage is ridden out inside 360dialog's 5 s; a longer one answers 500 (redelivered).
_OUTAGE = 2.0


class RedisStore(AsyncClosing):
    """Status and inbound-message webhooks of distributed campaigns, recorded in Redis.

    Pass it as ``WebhookReceiver(store=...)``; any number of receivers may share one Redis.
    ``campaign_status`` then reports delivery as well as sends.

    Args:
        redis: the shared Redis: a client (left open), or its URL (closed by :meth:`close`).
        ttl: seconds a message id or status is remembered as seen (360dialog redelivers for
            7 days), and an orphan status kept.

    Raises:
        ValidationError: ``ttl`` is not a positive number, or the URL is not a Redis URL.
    """

    def __init__(self, redis: Redis | str, *, ttl: float = DEDUP_TTL) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValidationError("RedisStore.ttl", f"must be a positive number, got {ttl!r}")
        self._ttl = max(1, math.ceil(ttl))
        self._owned = isinstance(redis, str)
        self._redis: Redis = connect(redis) if isinstance(redis, str) else redis
        self._record = self._redis.register_script(_lua.RECORD)

    def __repr__(self) -> str:
        return f"RedisStore(ttl={self._ttl})"

    async def record_webhook(self, notification: Notification) -> Notification:
        """Record a webhook's new statuses and messages; see :class:`WebhookStore`.

        Raises:
            RedisUnavailableError: Redis stayed unreachable (nothing was recorded, unless the
                reply of a script that ran was lost: then its statuses are not returned again).
        """
        if not isinstance(notification, Notification):
            raise ValidationError("notification", f"must be a Notification, got {notification!r}")
        statuses, messages = notification.statuses, notification.messages
        if not statuses and not messages:
            return notification
        args: list[str | int] = [PREFIX, self._ttl, len(statuses)]
        for status in statuses:
            args += _status_args(status)
        args += [message.message_id for message in messages]

        async def call() -> object:
            return await self._record(keys=[], args=args)

        fresh = await retrying(call, what="recording a webhook", outage=_OUTAGE)
        flags = [int(flag) for flag in fresh] if isinstance(fresh, list) else []
        if len(flags) != len(statuses) + len(messages):
            raise RuntimeError(f"unexpected reply of the webhook script: {fresh!r}")
        if all(flags):
            return notification
        split = len(statuses)
        return attrs.evolve(
            notification,
            statuses=tuple(s for s, new in zip(statuses, flags[:split], strict=True) if new),
            messages=tuple(m for m, new in zip(messages, flags[split:], strict=True) if new),
        )

    async def close(self) -> None:
        """Close the client if this store opened it (from a URL)."""
        if self._owned:
            await self._redis.aclose()

    aclose = close  # redis-py's name for it


def _status_args(status: StatusUpdate) -> tuple[str, str, str, str, str]:
    code = status.errors[0].code if status.status == "failed" and status.errors else None
    tag = parse_tag(status.callback_data)
    campaign, digest = tag if tag is not None else ("", "")
    return status.message_id, status.status, "" if code is None else str(code), campaign, digest
