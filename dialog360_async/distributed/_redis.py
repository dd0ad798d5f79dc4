"""Redis calls that ride out a restart: retried while the server is unreachable, up to a bound."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from ._errors import CampaignLostError, RedisUnavailableError

__all__ = ["OUTAGE_TIMEOUT", "connect", "retrying"]

logger = logging.getLogger("dialog360_async.distributed")

_T = TypeVar("_T")

OUTAGE_TIMEOUT = 30.0
"""Seconds an operation keeps retrying while Redis is unreachable before it gives up."""

# BusyLoadingError (a restarted server still reading its data) is a ConnectionError too.
_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, ConnectionError)


def connect(url: str) -> Redis:
    """A client for the shared state (replies decoded to str)."""
    client: Redis = Redis.from_url(
        url, decode_responses=True, health_check_interval=10, socket_connect_timeout=5
    )
    return client


async def retrying(
    operation: Callable[[], Awaitable[_T]],
    *,
    what: str,
    outage: float = OUTAGE_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """Run ``operation``, retrying while Redis is unreachable for at most ``outage`` seconds.

    Raises:
        RedisUnavailableError: Redis was still unreachable when the time ran out.
        CampaignLostError: a script found the campaign's state missing.
    """
    deadline: float | None = None
    delay = 0.05
    while True:
        try:
            return await operation()
        except _TRANSIENT as exc:
            now = clock()
            if deadline is None:
                deadline = now + outage
                logger.warning("Redis unreachable while %s (%s); retrying", what, exc)
            if now >= deadline:
                raise RedisUnavailableError(
                    f"Redis unreachable for {outage:g} s while {what}: {exc}"
                ) from exc
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 1.0)
        except redis_errors.ResponseError as exc:
            if str(exc).startswith("CAMPAIGN_LOST"):
                raise CampaignLostError(
                    f"the campaign's state vanished from Redis while {what} (was Redis restarted "
                    "without persistence, or flushed?); messages may have been sent: check "
                    "before running it again"
                ) from None
            raise


def text(value: Any) -> str:
    """A reply value as str (clients with and without ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else str(value)
