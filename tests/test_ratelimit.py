"""RateLimiter: achieved rate, bursts, FIFO, cancellation and adaptive rate, in simulated time."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialog360_async._ratelimit import RateLimiter
from dialog360_async.errors import ValidationError


class SimTime:
    """A clock plus a sleep that jumps the clock forward (optionally waking a little late).

    Only the head of the limiter's queue ever sleeps, so jumping is exact; ``sleep`` checks
    that no two sleeps overlap.
    """

    def __init__(self, late: float = 0.0, seed: int = 0) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._late = late
        self._random = random.Random(seed)
        self._sleeping = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert delay > 0
        assert not self._sleeping, "two tasks slept at once"
        self._sleeping = True
        self.sleeps.append(delay)
        self.now += delay + self._late * self._random.random()
        await asyncio.sleep(0)
        self._sleeping = False


class ManualTime:
    """A clock whose sleepers wake only when the test calls ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((self.now + delay, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            await settle()
            self._timers = [(when, fut) for when, fut in self._timers if not fut.done()]
            if not self._timers:
                break
            when, fut = min(self._timers, key=lambda timer: timer[0])
            if when > target:
                break
            self.now = max(self.now, when)
            fut.set_result(None)
        self.now = target
        await settle()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def run_workers(
    limiter: RateLimiter, sim: SimTime, seconds: float, workers: int
) -> list[float]:
    stamps: list[float] = []

    async def worker() -> None:
        while True:
            await limiter.acquire()
            if sim.now >= seconds:
                return
            stamps.append(sim.now)

    # The wall-clock timeout only turns a deadlock into a failure; nothing here is timed.
    async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())
    return stamps


def limiter_for(sim: SimTime | ManualTime, rate: float, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=sim.clock, sleep=sim.sleep, **kwargs)


# ---------------------------------------------------------------------------------------------
# achieved rate


@pytest.mark.parametrize("rate", [1.0, 80.0, 1000.0])
@pytest.mark.parametrize("workers", [1, 32])
async def test_achieved_rate_over_10_simulated_seconds(rate: float, workers: int) -> None:
    sim = SimTime()
    limiter = limiter_for(sim, rate)
    stamps = await run_workers(limiter, sim, 10.0, workers)
    assert len(stamps) == pytest.approx(rate * 10, rel=0.02)  # includes the initial burst
    steady = stamps[int(limiter.burst) :]
    if len(steady) > 1:
        achieved = (len(steady) - 1) / (steady[-1] - steady[0])
        assert achieved == pytest.approx(rate, rel=1e-6)


@pytest.mark.parametrize("rate", [1.0, 80.0, 1000.0])
async def test_no_drift_when_wakeups_are_late(rate: float) -> None:
    # Every sleep overshoots by up to 90 % of the interval, as a busy loop would.
    sim = SimTime(late=0.9 / rate, seed=7)
    stamps = await run_workers(limiter_for(sim, rate, burst=1), sim, 10.0, workers=8)
    assert len(stamps) == pytest.approx(rate * 10, rel=0.02)


@pytest.mark.parametrize("rate", [80.0, 1000.0])
async def test_burst_one_is_evenly_spaced(rate: float) -> None:
    sim = SimTime()
    stamps = await run_workers(limiter_for(sim, rate, burst=1), sim, 10.0, workers=4)
    assert len(stamps) == pytest.approx(rate * 10, abs=1)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) == pytest.approx(1 / rate)
    assert max(gaps) == pytest.approx(1 / rate)


async def test_default_sleep_smoke() -> None:
    limiter = RateLimiter(10_000.0, burst=1)  # real asyncio.sleep; no timing asserted
    await asyncio.gather(*(limiter.acquire() for _ in range(20)))
    assert limiter.waiting == 0


# ---------------------------------------------------------------------------------------------
# burst


def test_default_burst_is_a_tenth_of_a_second() -> None:
    assert RateLimiter(80).burst == 8.0
    assert RateLimiter(1000).burst == 100.0
    assert RateLimiter(5).burst == 1.0
    assert RateLimiter(0.2).burst == 1.0


async def test_burst_then_spacing_and_refill() -> None:
    sim = SimTime()
    limiter = limiter_for(sim, 10.0, burst=5)
    times = []
    for _ in range(7):
        await limiter.acquire()
        times.append(sim.now)
    assert times == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2])
    sim.now = 100.0  # a long idle spell refills the bucket, but only up to `burst`
    start = len(sim.sleeps)
    for _ in range(6):
        await limiter.acquire()
    assert len(sim.sleeps) - start == 1
    assert sim.now == pytest.approx(100.1)


# ---------------------------------------------------------------------------------------------
# FIFO and cancellation


async def test_fifo_order() -> None:
    sim = ManualTime()
    limiter = limiter_for(sim, 10.0, burst=1)
    order: list[int] = []

    async def take(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    tasks = [asyncio.create_task(take(i)) for i in range(20)]
    await sim.advance(5.0)
    await asyncio.gather(*tasks)
    assert order == list(range(20))


async def test_newcomer_does_not_jump_the_queue() -> None:
    sim = ManualTime()
    limiter = limiter_for(sim, 1.0, burst=2)
    got: list[str] = []

    async def take(name: str) -> None:
        await limiter.acquire()
        got.append(name)

    first = [asyncio.create_task(take(n)) for n in "abc"]
    await settle()
    assert got == ["a", "b"]
    await sim.advance(0.5)
    late = asyncio.create_task(take("d"))
    await sim.advance(5.0)
    await asyncio.gather(*first, late)
    assert got == ["a", "b", "c", "d"]


async def test_cancelled_waiters_do_not_stall_others() -> None:
    sim = ManualTime()
    limiter = limiter_for(sim, 1.0, burst=1)
    done: dict[str, float] = {}

    async def take(name: str) -> None:
        await limiter.acquire()
        done[name] = sim.now

    tasks = {n: asyncio.create_task(take(n)) for n in "abcde"}
    await settle()
    assert done == {"a": 0.0}
    tasks["c"].cancel()  # queued in the middle
    tasks["e"].cancel()  # queued at the tail
    await sim.advance(0.5)
    tasks["b"].cancel()  # the head, mid-sleep: takes nothing
    await sim.advance(2.0)
    assert done == {"a": 0.0, "d": 1.0}
    assert limiter.waiting == 0
    for name in "bce":
        assert tasks[name].cancelled()
    extra = asyncio.create_task(take("f"))  # at t=2.5 the bucket is free again
    await settle()
    await extra
    assert done["f"] == 2.5


async def test_mass_cancellation_keeps_the_next_slot() -> None:
    sim = ManualTime()
    limiter = limiter_for(sim, 2.0, burst=1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(100)]
    last = asyncio.create_task(limiter.acquire())
    await settle()
    for task in reversed(waiters):
        task.cancel()
    await sim.advance(0.5)
    assert last.done()
    assert sim.now == 0.5
    assert limiter.waiting == 0


async def test_cancelled_after_being_woken() -> None:
    sim = ManualTime()
    limiter = limiter_for(sim, 1.0, burst=1)
    await limiter.acquire()
    head = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    third = asyncio.create_task(limiter.acquire())
    await settle()
    await sim.advance(1.0)  # head gets its permit and wakes `second`...
    second.cancel()  # ...which is cancelled before it runs
    await sim.advance(1.0)
    assert head.done()
    assert second.cancelled()
    assert third.done()
    assert limiter.waiting == 0


# ---------------------------------------------------------------------------------------------
# adaptive rate


def test_slow_down_once_per_window_and_floor() -> None:
    sim = SimTime()
    limiter = limiter_for(sim, 100.0, min_rate=40.0)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(70.0)
    sim.now = 0.5
    limiter.slow_down()  # same burst of throttle errors: ignored
    assert limiter.rate == pytest.approx(70.0)
    sim.now = 1.5
    limiter.slow_down()
    assert limiter.rate == pytest.approx(49.0)
    sim.now = 3.0
    limiter.slow_down()
    assert limiter.rate == 40.0
    assert limiter.configured_rate == 100.0


def test_min_rate_above_rate_means_no_cut() -> None:
    limiter = RateLimiter(0.2, min_rate=0.5, clock=lambda: 0.0)
    limiter.slow_down()
    assert limiter.rate == 0.2


async def test_slow_down_applies_to_the_next_permits() -> None:
    sim = SimTime()
    limiter = limiter_for(sim, 10.0, burst=1)
    await limiter.acquire()
    limiter.slow_down(0.5)
    stamps = await run_workers(limiter, sim, 10.0, workers=4)
    assert len(stamps) == pytest.approx(50, abs=1)


def test_recovery_follows_cubic_back_to_configured() -> None:
    sim = SimTime()
    limiter = limiter_for(sim, 80.0)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(56.0)
    sim.now = 1.0
    assert limiter.rate == pytest.approx(56.0)  # no recovery without successes
    limiter.on_success()
    k = math.cbrt(24 / 0.4)
    assert limiter.rate == pytest.approx(0.4 * (1 - k) ** 3 + 80)
    rates = []
    for step in range(1, 60):
        sim.now = 1.0 + step * 0.1
        limiter.on_success()
        rates.append(limiter.rate)
    assert rates == sorted(rates)
    assert rates[-1] == 80.0
    assert max(rates) <= 80.0


def test_second_cut_remembers_the_rate_it_happened_at() -> None:
    sim = SimTime()
    limiter = limiter_for(sim, 80.0)
    limiter.slow_down()
    sim.now = 2.0
    limiter.on_success()
    before = limiter.rate
    assert 56.0 < before < 80.0
    limiter.slow_down()
    assert limiter.rate == pytest.approx(before * 0.7)
    sim.now = 2.0 + math.cbrt(before * 0.3 / 0.4)
    limiter.on_success()
    assert limiter.rate == pytest.approx(before)  # plateau at the last cut, then probe above
    sim.now += 30
    limiter.on_success()
    assert limiter.rate == 80.0


@given(
    st.lists(
        st.tuples(st.floats(0, 5), st.sampled_from(["cut", "ok"]), st.floats(0.01, 0.99)),
        max_size=50,
    ),
    st.floats(0.1, 2000),
)
def test_rate_always_between_floor_and_configured(
    events: list[tuple[float, str, float]], rate: float
) -> None:
    sim = SimTime()
    limiter = limiter_for(sim, rate)
    floor = min(0.5, rate)
    for dt, op, factor in events:
        sim.now += dt
        if op == "cut":
            limiter.slow_down(factor)
        else:
            limiter.on_success()
        assert floor <= limiter.rate <= rate
        assert math.isfinite(limiter.rate)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0,), {}, "RateLimiter.rate"),
        ((-1,), {}, "RateLimiter.rate"),
        ((math.nan,), {}, "RateLimiter.rate"),
        ((math.inf,), {}, "RateLimiter.rate"),
        ((True,), {}, "RateLimiter.rate"),
        ((10,), {"burst": 0.5}, "RateLimiter.burst"),
        ((10,), {"burst": math.inf}, "RateLimiter.burst"),
        ((10,), {"min_rate": 0}, "RateLimiter.min_rate"),
    ],
)
def test_validation(args: tuple[Any, ...], kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RateLimiter(*args, **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("factor", [0, 1, 1.5, -0.5, math.nan])
def test_slow_down_factor_validation(factor: float) -> None:
    with pytest.raises(ValidationError):
        RateLimiter(10).slow_down(factor)


def test_repr() -> None:
    assert repr(RateLimiter(80)) == "RateLimiter(rate=80, configured_rate=80, burst=8, waiting=0)"
