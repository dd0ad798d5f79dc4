"""An adaptive, FIFO-fair token bucket for send throughput (e.g. 80 msg/s per phone number).

Scheduling is GCRA (the virtual-scheduling form of a token bucket): one float, the theoretical
arrival time ``_tat``, advances by ``1/rate`` per permit. Permits are computed from that schedule,
never from when a task happened to wake, so loop latency cannot make the achieved rate drift.
Background: ../shared/docs/reliability-notes.md §3 (throughput limiting, adaptive slowdown).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from . import _validation as v
from .errors import ValidationError

__all__ = ["Limiter", "RateLimiter"]

# Throttle errors from sends already in flight arrive together; count them as one signal.
_CUT_WINDOW = 1.0
# botocore's CUBIC constant (botocore/retries/throttling.py): recovery speed in permits/s per s**3.
_CUBIC_C = 0.4
# Waits shorter than this count as zero: float rounding could otherwise leave a residue that a
# fake clock (or a coarse one) never gets past.
_EPSILON = 1e-9


def _positive(field: str, value: object) -> float:
    number = v.finite(value, f"RateLimiter.{field}")
    if not number > 0:
        raise ValidationError(f"RateLimiter.{field}", f"must be > 0, got {v.shown(value)}")
    return number


class Limiter(Protocol):
    """What a client and the bulk sender need from a rate limiter.

    :class:`RateLimiter` is the local one; the distributed extra shares one through Redis.
    """

    async def acquire(self) -> None:
        """Wait for one permit."""
        ...

    def slow_down(self, factor: float = 0.7) -> None:
        """Lower the rate after a throughput error (130429)."""
        ...

    def on_success(self) -> None:
        """Note a successful send (the rate may recover)."""
        ...


class RateLimiter:
    """Token bucket: ``rate`` permits per second, bursts of up to ``burst`` permits.

    Waiters are served strictly first come, first served. Only the task at the head of the
    queue sleeps; the others wait their turn, so cancelling any waiter costs nobody a slot and
    a ``slow_down`` applies to the very next permit.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        min_rate: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Create a full bucket.

        Args:
            rate: permits per second, e.g. 80 for WhatsApp's default per-number throughput.
            burst: permits that may go at once after an idle spell; default ``max(1, rate/10)``,
                i.e. 100 ms worth, so no one-second window sees more than ~1.1 x ``rate``.
            min_rate: ``slow_down`` never goes below this (botocore's adaptive minimum is 0.5).
            clock: monotonic seconds; injectable for tests.
            sleep: coroutine function that sleeps; injectable for tests.
        """
        self._configured = _positive("rate", rate)
        if burst is None:
            burst = max(1.0, self._configured / 10)
        self._burst = _positive("burst", burst)
        if self._burst < 1:
            raise ValidationError("RateLimiter.burst", f"must be >= 1, got {v.shown(burst)}")
        self._floor = min(_positive("min_rate", min_rate), self._configured)
        self._clock = v.function(clock, "RateLimiter.clock")
        self._sleep = v.function(sleep, "RateLimiter.sleep")
        self._rate = self._configured
        self._tat = -math.inf  # theoretical arrival time of the next permit (GCRA)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = -math.inf
        self._rate_before_cut = self._configured  # CUBIC's W_max
        self._k = 0.0  # CUBIC: seconds after the cut at which the rate is back at W_max

    @property
    def rate(self) -> float:
        """The current rate in permits per second (lower than configured after throttling)."""
        return self._rate

    @property
    def configured_rate(self) -> float:
        """The rate given at construction; recovery never goes above it."""
        return self._configured

    @property
    def burst(self) -> float:
        """Permits that may go at once at the configured rate."""
        return self._burst

    @property
    def waiting(self) -> int:
        """Tasks currently queued in ``acquire``."""
        return len(self._waiters)

    def _tolerance(self, interval: float) -> float:
        # The burst shrinks with the rate: after a cut the bucket holds the same duration of
        # sending (100 ms by default), not the full-rate burst.
        burst = max(1.0, self._burst * self._rate / self._configured)
        return (burst - 1.0) * interval

    def _try_take(self, arrival: float) -> float:
        """Take a permit if one is free now; otherwise return the seconds to wait."""
        interval = 1.0 / self._rate
        wait = self._tat - self._tolerance(interval) - self._clock()
        if wait > _EPSILON:
            return wait
        # Count from the arrival time, not the wake-up time: a late wake-up must not push
        # every later permit back (that is how naive limiters drift below their rate).
        self._tat = max(self._tat, arrival) + interval
        return 0.0

    async def acquire(self) -> None:
        """Wait for one permit, in FIFO order.

        Cancellation-safe: a waiter cancelled before its permit takes nothing.
        """
        arrival = self._clock()
        if not self._waiters and self._try_take(arrival) <= 0.0:
            return
        me = asyncio.get_running_loop().create_future()
        self._waiters.append(me)
        try:
            if self._waiters[0] is not me:
                await me  # woken by the previous head once it has its permit
            while (wait := self._try_take(arrival)) > 0:
                await self._sleep(wait)
        finally:
            if self._waiters[0] is me:
                self._waiters.popleft()
                if self._waiters and not self._waiters[0].done():
                    self._waiters[0].set_result(None)
            else:
                self._waiters.remove(me)

    def slow_down(self, factor: float = 0.7) -> None:
        """Cut the rate after a throughput error (e.g. WhatsApp 130429).

        Multiplies the rate by ``factor`` (botocore's beta, 0.7), not below ``min_rate``. Calls
        within one second of the last cut are ignored: a burst of throttle errors from sends
        that were already in flight is one signal, not many.

        Args:
            factor: multiplier in (0, 1).
        """
        field = "RateLimiter.slow_down.factor"
        if not 0 < v.finite(factor, field) < 1:
            raise ValidationError(field, f"must be in (0, 1), got {v.shown(factor)}")
        now = self._clock()
        if now - self._last_cut < _CUT_WINDOW:
            return
        self._rate_before_cut = self._rate
        self._rate = max(self._floor, self._rate * factor)
        self._last_cut = now
        self._k = math.cbrt((self._rate_before_cut - self._rate) / _CUBIC_C)

    def on_success(self) -> None:
        """Report a successful send; the rate climbs back toward the configured rate.

        Recovery follows CUBIC as in botocore's adaptive mode: concave back up to the rate at
        the last cut (reached ``cbrt((W_max - rate_after_cut) / 0.4)`` s after the cut), then
        convex probing above it, never above the configured rate.
        """
        if self._rate < self._configured:
            self._recover(self._clock())

    def _recover(self, now: float) -> None:
        if self._rate >= self._configured or self._last_cut == -math.inf:
            return
        elapsed = now - self._last_cut
        target = _CUBIC_C * (elapsed - self._k) ** 3 + self._rate_before_cut
        # max(): a clock that steps back must not lower the rate, only a cut may.
        self._rate = min(self._configured, max(self._rate, target))

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self._rate:g}, configured_rate={self._configured:g}, "
            f"burst={self._burst:g}, waiting={len(self._waiters)})"
        )
