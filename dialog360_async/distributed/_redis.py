"""Redis calls that ride out a restart: retried while the server is unreachable, up to a bound."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url

from ..errors import ValidationError
from ._errors import CampaignLostError, RedisUnavailableError

__all__ = ["OUTAGE_TIMEOUT", "Outage", "check_url", "connect", "reach", "redacted", "retrying"]

logger = logging.getLogger("dialog360_async.distributed")

_T = TypeVar("_T")

OUTAGE_TIMEOUT = 30.0
"""Seconds an operation keeps retrying while Redis is unreachable before it gives up."""

# BusyLoadingError (a restarted server still reading its data) is a ConnectionError too.
_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, ConnectionError)


_QUERY_SECRET = re.compile(r"(?i)(password=)[^&]*")


def redacted(url: str) -> str:
    """``url`` as it may be shown: its password (in the user part or the query) masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<the Redis URL>"
    shown = url
    if password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        shown = shown.replace(parts.netloc, f"{name}:***@{host}", 1)
    return _QUERY_SECRET.sub(r"\1***", shown)


def check_url(url: str) -> str:
    """``url`` if it is a Redis URL (``redis://``, ``rediss://``, ``unix://``).

    Raises:
        ValidationError: it is not one.
    """
    try:
        parse_url(url)
    except (ValueError, TypeError) as exc:
        raise ValidationError("redis_url", f"{exc} (got {redacted(str(url))})") from None
    return url


def connect(url: str) -> Redis:
    """A client for the shared state (replies decoded to str).

    Raises:
        ValidationError: ``url`` is not a Redis URL.
    """
    client: Redis = Redis.from_url(
        check_url(url), decode_responses=True, health_check_interval=10, socket_connect_timeout=5
    )
    return client


async def reach(redis: Redis, url: str) -> None:
    """Check that Redis answers, once, before a command starts.

    A wrong URL, a wrong password or a server that is down then fails at once, in one line,
    instead of after riding out an outage that is none.

    Raises:
        RedisUnavailableError: ``cannot reach Redis at URL: reason`` (no password shown).
    """
    try:
        await redis.ping()
    except redis_errors.RedisError as exc:
        raise RedisUnavailableError(f"cannot reach Redis at {redacted(url)}: {exc}") from None


Outage = float | Callable[[], float]
"""Seconds to ride out an outage, or a function giving them, asked at each retry (a stopping
worker's answers 0: it does not wait for Redis to come back)."""


async def retrying(
    operation: Callable[[], Awaitable[_T]],
    *,
    what: str,
    outage: Outage = OUTAGE_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """Run ``operation``, retrying while Redis is unreachable for at most ``outage`` seconds.

    Raises:
        RedisUnavailableError: Redis was still unreachable when the time ran out.
        CampaignLostError: a script found the campaign's state missing.
    """
    since: float | None = None
    delay = 0.05
    while True:
        try:
            return await operation()
        except _TRANSIENT as exc:
            now = clock()
            if since is None:
                since = now
                logger.warning("Redis unreachable while %s (%s); retrying", what, exc)
            limit = outage() if callable(outage) else outage
            if now - since >= limit:
                spell = f" for {limit:g} s" if limit > 0 else ""
                raise RedisUnavailableError(
                    f"Redis unreachable{spell} while {what}: {exc}"
                ) from exc
            await asyncio.sleep(min(delay, since + limit - now))
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
