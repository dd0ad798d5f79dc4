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

    One limiter may serve several event loops in turn (a channel's limiter is shared by every
    client of its key, and test suites run a loop per test): waiters left behind by a loop that
    stopped or closed are dropped, not waited for.
    """

    __slots__ = (
        "__weakref__",
        "_auto_burst",
        "_burst",
        "_clock",
        "_configured",
        "_floor",
        "_k",
        "_last_cut",
        "_min_rate",
        "_rate",
        "_rate_before_cut",
        "_sleep",
        "_tat",
        "_waiters",
    )

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
        self._auto_burst = burst is None  # then the burst follows the rate (see set_rate)
        if burst is None:
            burst = max(1.0, self._configured / 10)
        self._burst = _positive("burst", burst)
        if self._burst < 1:
            raise ValidationError("RateLimiter.burst", f"must be >= 1, got {v.shown(burst)}")
        self._min_rate = _positive("min_rate", min_rate)
        self._floor = min(self._min_rate, self._configured)
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

    @property
    def at_rest(self) -> bool:
        """True when it would act as a new limiter of its configured rate: nobody waiting, the
        bucket full, no cut in force or about to be ignored."""
        now = self._clock()
        return (
            not self._waiters
            and self._tat <= now
            and self._rate == self._configured
            and now - self._last_cut >= _CUT_WINDOW
        )

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
        loop = asyncio.get_running_loop()
        if self._waiters and self._waiters[0].get_loop() is not loop:
            self._drop_stale(loop)
        me = loop.create_future()
        self._waiters.append(me)
        try:
            if self._waiters[0] is not me:
                await me  # woken by the previous head once it has its permit
            while (wait := self._try_take(arrival)) > 0:
                await self._sleep(wait)
        finally:
            waiters = self._waiters
            if waiters and waiters[0] is me:
                waiters.popleft()
                self._wake_head()
            elif me in waiters:
                waiters.remove(me)
            # else: dropped as stale while its loop was stopped; nothing to give back

    def _wake_head(self) -> None:
        """Tell the new head of the queue that it may take its permit."""
        waiters = self._waiters
        while waiters:
            head = waiters[0]
            if head.done():
                return  # cancelled: its own ``finally`` passes the turn on
            loop = head.get_loop()
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:  # a task of a closed loop being collected runs its finally
                running = None
            if loop is running:
                head.set_result(None)
                return
            if not loop.is_closed():
                loop.call_soon_threadsafe(_release, head)
                return
            waiters.popleft()  # its loop is gone: nobody will ever take that turn

    def _drop_stale(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget waiters of other loops that no longer run: a loop closed (or stopped) with
        tasks still queued here would otherwise block every later waiter for ever."""
        kept: deque[asyncio.Future[None]] = deque()
        waiters = tuple(self._waiters)  # one step in C: another thread may append meanwhile
        for waiter in waiters:
            other = waiter.get_loop()
            if other is loop or other.is_running():
                kept.append(waiter)
            elif not other.is_closed():
                # A stopped loop may run again: its task then goes on, outside the queue.
                other.call_soon_threadsafe(_release, waiter)
        if len(kept) != len(waiters):
            self._waiters = kept
            self._wake_head()

    def set_rate(self, rate: float) -> None:
        """Change the configured rate, e.g. when the channel's throughput tier changes.

        The adaptive state scales with it: a limiter cut to 70 % after throttling stays at
        70 % of the new rate and recovers toward it. A burst left to its default follows the
        rate (a tenth of a second's worth); the schedule of permits already given is kept.

        Args:
            rate: permits per second, > 0.
        """
        new = _positive("rate", rate)
        old = self._configured
        if new == old:
            return
        ratio = new / old
        self._configured = new
        if self._auto_burst:
            self._burst = max(1.0, new / 10)
        self._floor = min(self._min_rate, new)
        self._rate = min(new, max(self._floor, self._rate * ratio))
        self._rate_before_cut *= ratio
        self._k *= math.cbrt(ratio)  # k = cbrt((W_max - W_cut) / C), both scaled by ratio

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


def _release(waiter: asyncio.Future[None]) -> None:
    # Runs in the waiter's own loop (call_soon_threadsafe): it may have been cancelled since.
    if not waiter.done():
        waiter.set_result(None)
