"""RedisRateLimiter: one token bucket per channel in Redis, shared by every worker.

Each permit is one atomic script call that reserves the next slot of the channel's GCRA
schedule and answers how long to wait for it, so N workers together keep the channel at its
rate with no read-modify-write race. Within a process the waiters queue locally (FIFO) and only
the head holds a reservation: Redis sees one caller per process, and a cut (130429) applies to
the next permit of every worker instead of after a backlog of reservations.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextvars import ContextVar

from redis.asyncio import Redis

from ..errors import ValidationError
from . import _keys, _lua
from ._redis import OUTAGE_TIMEOUT, retrying

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger("dialog360_async.distributed")

_CUT_WINDOW = 1.0  # as the local limiter: throttle errors within a second are one signal
_TTL = 3600.0


# A permit taken ahead by prepay() for the next acquire() of the same task.
_PREPAID: ContextVar[RedisRateLimiter | None] = ContextVar("d360_prepaid_permit", default=None)


def _number(field: str, value: object, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"RedisRateLimiter.{field}", f"must be a number, got {value!r}")
    if not low < value < math.inf:
        raise ValidationError(
            f"RedisRateLimiter.{field}", f"must be finite and > {low:g}, got {value!r}"
        )
    return float(value)


def _time(now: float | None) -> str:
    return "" if now is None else repr(float(now))


class RedisRateLimiter:
    """A channel's rate limit shared through Redis; pass it as a client's ``rate_limit=``.

    Implements the :class:`~dialog360_async.Limiter` protocol. ``slow_down`` (on 130429) cuts
    the shared rate for every worker, at most once a second; the rate recovers by time inside
    the script (CUBIC, as the local limiter), so ``on_success`` has nothing to do.

    Args:
        redis: the shared Redis (any client of ``redis.asyncio``).
        channel: the channel's name; workers naming the same channel share its bucket.
        rate: messages per second for the channel (WhatsApp's default 80, up to 1,000).
        burst: permits that may go at once after an idle spell; default ``max(1, rate/10)``.
        min_rate: ``slow_down`` never goes below this.
        outage: seconds to keep retrying while Redis is unreachable before ``acquire`` fails
            (the message is then not sent).
    """

    def __init__(
        self,
        redis: Redis,
        channel: str,
        rate: float = 80.0,
        *,
        burst: float | None = None,
        min_rate: float = 0.5,
        outage: float = OUTAGE_TIMEOUT,
    ) -> None:
        self.channel = _keys.channel_name(channel)
        self._key = _keys.bucket(channel)
        self._configured = _number("rate", rate)
        self._burst = _number("burst", max(1.0, rate / 10) if burst is None else burst)
        if self._burst < 1:
            raise ValidationError("RedisRateLimiter.burst", f"must be >= 1, got {burst!r}")
        self._floor = min(_number("min_rate", min_rate), self._configured)
        self._outage = outage
        self._reserve_script = redis.register_script(_lua.RESERVE)
        self._cut_script = redis.register_script(_lua.CUT)
        self._redis = redis
        self._gate = asyncio.Lock()
        self._rate = self._configured
        self._pending: set[asyncio.Task[bool]] = set()

    @property
    def configured_rate(self) -> float:
        """The rate given at construction."""
        return self._configured

    @property
    def rate(self) -> float:
        """The shared rate as of this process's last call (lower after throttling)."""
        return self._rate

    async def reserve(self, now: float | None = None) -> float:
        """Reserve the next permit; return the seconds until it is due (0 = now).

        Args:
            now: the time to compute with, in seconds; None uses the Redis server's clock.
        """
        wait, rate = await self._reserve_script(
            keys=[self._key],
            args=[_time(now), repr(self._configured), repr(self._burst), int(_TTL * 1000)],
        )
        self._rate = float(rate)
        return max(0.0, float(wait))

    async def cut(self, factor: float = 0.7, now: float | None = None) -> bool:
        """Multiply the shared rate by ``factor`` now; False if cut less than 1 s ago."""
        done, rate = await self._cut_script(
            keys=[self._key],
            args=[
                _time(now),
                repr(self._configured),
                repr(float(factor)),
                repr(self._floor),
                repr(_CUT_WINDOW),
                int(_TTL * 1000),
            ],
        )
        self._rate = float(rate)
        return bool(int(done))

    async def acquire(self) -> None:
        """Wait for one permit of the channel's shared rate (or use the one prepaid).

        Raises:
            RedisUnavailableError: Redis stayed unreachable for ``outage`` seconds.
        """
        if _PREPAID.get() is self:
            _PREPAID.set(None)
            return
        await self._take()

    async def prepay(self) -> None:
        """Wait for a permit now, for the next :meth:`acquire` of the current task.

        The ledger pays before it claims a message, so that no claim is held while its send
        waits for the rate: a worker that dies then leaves in doubt only what was in flight.
        """
        await self._take()
        _PREPAID.set(self)

    def bucket(self) -> tuple[str, list[str | int]]:
        """The bucket's key and its script arguments (Redis's clock): for a ledger that takes
        permits in its claims (``RedisLedger(pace=...)``)."""
        return self._key, ["", repr(self._configured), repr(self._burst), int(_TTL * 1000)]

    def paid(self) -> None:
        """Note that a claim took a permit for the next :meth:`acquire` of the current task."""
        _PREPAID.set(self)

    def note_rate(self, rate: float) -> None:
        """The shared rate as a script that took permits last saw it."""
        self._rate = rate

    async def _take(self) -> None:
        async with self._gate:
            wait = await retrying(
                self.reserve, what=f"pacing channel {self.channel}", outage=self._outage
            )
            if wait > 0:
                await asyncio.sleep(wait)

    def slow_down(self, factor: float = 0.7) -> None:
        """Cut the shared rate after a throughput error (130429), in the background."""
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ValidationError(
                "RedisRateLimiter.slow_down.factor", f"must be in (0, 1), got {factor!r}"
            )
        task = asyncio.get_running_loop().create_task(self._cut_in_background(float(factor)))
        self._pending.add(task)  # a bare task could be garbage-collected mid-flight
        task.add_done_callback(self._pending.discard)

    async def _cut_in_background(self, factor: float) -> bool:
        try:
            return await retrying(
                lambda: self.cut(factor), what=f"slowing channel {self.channel}", outage=5.0
            )
        except Exception:
            logger.exception("could not slow down channel %s", self.channel)
            return False

    def on_success(self) -> None:
        """Nothing to do: the shared rate recovers by time, inside the script."""

    async def aclose(self) -> None:
        """Wait for background cuts to finish."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(channel={self.channel!r}, rate={self._rate:g}, "
            f"configured_rate={self._configured:g}, burst={self._burst:g})"
        )
