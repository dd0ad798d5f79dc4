"""The rate limit belongs to the channel (one API key): every client of a key shares one limiter.

design.md, "Broadcasts that behave": by default every client of one key in a process shares one
adaptive limiter (80 msg/s, x0.7 on 130429, recovering); ``rate_limit=None`` turns it off.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import math
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dialog360_async import (
    Dialog360Client,
    Location,
    OnPremiseClient,
    SessionPool,
    ValidationError,
    _channels,
)
from dialog360_async._channels import DEFAULT_RATE, ChannelLimits
from dialog360_async._ratelimit import RateLimiter
from dialog360_async._secret import Secret
from dialog360_async.testing import FakeDialog360

HQ = Location(latitude=52.52, longitude=13.40)
KEY = "channel-key-0123456789"
OTHER = "other-channel-key-9876"


class SimTime:
    """A clock plus a sleep that jumps it forward: the limiter's waits cost no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> SimTime:
    """A fresh process registry whose limiters run on simulated time."""
    time_ = SimTime()
    registry = ChannelLimits(clock=time_.clock, sleep=time_.sleep)
    monkeypatch.setattr(_channels, "channel_limits", registry)
    return time_


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> ChannelLimits:
    """A fresh process registry on the real clock (no state from other tests)."""
    fresh = ChannelLimits()
    monkeypatch.setattr(_channels, "channel_limits", fresh)
    return fresh


def numbers() -> Iterator[str]:
    for n in itertools.count():
        yield f"+1650555{n % 10_000:04d}"


# ---------------------------------------------------------------------------------------------
# one bucket per key (simulated time, real sends over loopback)


async def test_clients_of_one_key_draw_from_one_bucket(sim: SimTime) -> None:
    async with FakeDialog360(throughput=None) as fake, SessionPool() as pool:
        clients = [
            Dialog360Client(KEY, base_url=fake.url, retry=None),
            Dialog360Client(KEY, base_url=fake.url),
            OnPremiseClient(KEY, base_url=fake.url),  # same key, same channel
            pool.client(KEY, base_url=fake.url),
        ]
        try:
            shared = clients[0].rate_limit
            assert isinstance(shared, RateLimiter)
            assert all(c.rate_limit is shared for c in clients)
            assert shared.configured_rate == DEFAULT_RATE
            to = numbers()
            for n in range(48):  # a burst of 8, then one permit per 1/80 s, whoever sends
                await clients[n % 4].send_location(next(to), HQ)
            assert sim.now == pytest.approx((48 - shared.burst) / DEFAULT_RATE)

            # Another key is another channel: its own full bucket, no wait at all.
            other = Dialog360Client(OTHER, base_url=fake.url)
            assert other.rate_limit is not shared
            before = sim.now
            for _ in range(8):
                await other.send_location(next(to), HQ)
            assert sim.now == before
            await other.close()
        finally:
            for client in clients:
                await client.close()
    assert fake.stats()["sends"]["total"] == 56


async def test_rate_limit_none_sends_unpaced_and_leaves_the_channel_alone(sim: SimTime) -> None:
    async with FakeDialog360(throughput=None) as fake:
        async with Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as free:
            assert free.rate_limit is None
            to = numbers()
            for _ in range(40):
                await free.send_location(next(to), HQ)
        assert sim.now == 0.0
        paced = Dialog360Client(KEY, base_url=fake.url)
        assert isinstance(paced.rate_limit, RateLimiter)
        assert paced.rate_limit.at_rest  # the unpaced sends took nothing from the channel
        await paced.close()


def test_a_number_is_the_channels_limit(sim: SimTime) -> None:
    default = Dialog360Client(KEY)
    fast = Dialog360Client(KEY, rate_limit=200)
    assert fast.rate_limit is default.rate_limit
    assert isinstance(default.rate_limit, RateLimiter)
    assert default.rate_limit.configured_rate == 200.0
    assert default.rate_limit.burst == 20.0  # the default burst follows the rate
    later = OnPremiseClient(KEY)  # a default client joins, it does not reset the limit
    assert later.rate_limit is default.rate_limit
    assert default.rate_limit.configured_rate == 200.0
    Dialog360Client(KEY, rate_limit=40.0)  # the latest number wins
    assert default.rate_limit.configured_rate == 40.0
    assert Dialog360Client(OTHER).rate_limit.configured_rate == DEFAULT_RATE  # type: ignore[union-attr]


def test_a_failed_constructor_leaves_the_channels_limit_alone(sim: SimTime) -> None:
    channel = Dialog360Client(KEY).rate_limit
    assert isinstance(channel, RateLimiter)
    with pytest.raises(ValidationError, match="base_url"):
        Dialog360Client(KEY, rate_limit=5, base_url="http://example.com")
    with pytest.raises(ValidationError, match="timeout"):
        Dialog360Client(KEY, rate_limit=5, timeout=-1)
    assert channel.configured_rate == DEFAULT_RATE


def test_a_limiter_object_is_used_as_given(sim: SimTime) -> None:
    mine = RateLimiter(10)
    client = Dialog360Client(KEY, rate_limit=mine)
    assert client.rate_limit is mine
    channel = Dialog360Client(KEY).rate_limit
    assert channel is not mine
    assert isinstance(channel, RateLimiter) and channel.configured_rate == DEFAULT_RATE


def test_the_channel_keeps_its_state_after_its_clients_are_gone(sim: SimTime) -> None:
    # A web service that makes a client per request must still be paced and slowed down.
    client = Dialog360Client(KEY)
    limiter = client.rate_limit
    assert isinstance(limiter, RateLimiter)
    limiter.slow_down()
    del client, limiter
    gc.collect()
    again = Dialog360Client(KEY).rate_limit
    assert isinstance(again, RateLimiter)
    assert again.rate == pytest.approx(DEFAULT_RATE * 0.7)


@pytest.mark.parametrize("bad", ["80", "Channel", "", True, 0, -1, math.nan, math.inf, object()])
def test_rate_limit_values_are_checked(sim: SimTime, bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Dialog360Client(KEY, rate_limit=bad)
    assert info.value.field == "rate_limit"
    assert KEY not in str(info.value)


def test_pool_clients_of_one_key_share_the_channel_whatever_their_options(sim: SimTime) -> None:
    pool = SessionPool()
    plain = pool.client(KEY)
    quick = pool.client(KEY, retry=None, timeout=5.0)
    onprem = pool.on_premise_client(KEY)
    assert len({id(plain), id(quick), id(onprem)}) == 3  # three cached clients...
    assert plain.rate_limit is quick.rate_limit is onprem.rate_limit  # ...one channel
    assert pool.client(OTHER).rate_limit is not plain.rate_limit


# ---------------------------------------------------------------------------------------------
# the registry: no key in it, bounded


def test_the_registry_holds_no_key() -> None:
    registry = ChannelLimits()
    registry.limiter(Secret(KEY))
    digests = list(registry._live.keys()) + list(registry._kept.keys())
    assert digests and all(isinstance(d, bytes) and len(d) == 16 for d in digests)
    for digest in digests:
        assert KEY.encode() not in digest
        # Salted: the plain hash of a guessed key does not find it.
        assert digest != hashlib.blake2b(KEY.encode(), digest_size=16).digest()
    assert KEY not in repr(registry)


def test_the_registry_forgets_resting_limiters_when_it_grows() -> None:
    registry = ChannelLimits(clock=lambda: 100.0)
    held = registry.limiter(Secret("held"))  # at rest, but a client holds it
    busy = registry.limiter(Secret("busy"))
    busy.slow_down()  # state that a new limiter would not have
    fast = registry.limiter(Secret("fast"))
    fast.set_rate(500)  # a channel limit that was given explicitly
    del busy, fast
    for n in range(1100):  # resting, unreferenced channels at the default rate
        registry.limiter(Secret(f"idle-{n}"))
    gc.collect()
    assert len(registry) < 100  # the idle ones went; the registry did not keep 1,103
    assert registry.limiter(Secret("held")) is held
    assert registry.limiter(Secret("busy")).rate == pytest.approx(DEFAULT_RATE * 0.7)
    assert registry.limiter(Secret("fast")).configured_rate == 500.0


def test_clear_starts_the_channels_afresh() -> None:
    registry = ChannelLimits()
    first = registry.limiter(Secret(KEY))
    registry.clear()
    assert registry.limiter(Secret(KEY)) is not first
    assert len(registry) == 1


# ---------------------------------------------------------------------------------------------
# set_rate and at_rest


def test_set_rate_scales_the_adaptive_state() -> None:
    sim = SimTime()
    limiter = RateLimiter(80, clock=sim.clock, sleep=sim.sleep)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(56.0)
    limiter.set_rate(80)  # the same rate again (a client made with rate_limit=80): no reset
    assert limiter.rate == pytest.approx(56.0)
    limiter.set_rate(160)
    assert limiter.configured_rate == 160.0
    assert limiter.rate == pytest.approx(112.0)  # still cut to 70 %, of the new rate
    assert limiter.burst == 16.0
    rates = []
    for step in range(1, 200):
        sim.now = step * 0.1
        limiter.on_success()
        rates.append(limiter.rate)
    assert rates == sorted(rates)
    assert rates[-1] == 160.0


async def test_set_rate_lower_paces_at_the_new_rate() -> None:
    sim = SimTime()
    limiter = RateLimiter(80, clock=sim.clock, sleep=sim.sleep)
    limiter.set_rate(20)
    assert limiter.burst == 2.0
    stamps = []
    while sim.now < 10:
        await limiter.acquire()
        stamps.append(sim.now)
    steady = stamps[2:]
    assert (len(steady) - 1) / (steady[-1] - steady[0]) == pytest.approx(20.0)


def test_set_rate_keeps_an_explicit_burst_and_checks_its_value() -> None:
    limiter = RateLimiter(80, burst=2)
    limiter.set_rate(500)
    assert limiter.burst == 2.0
    for bad in (0, -5, math.nan, math.inf, True, "80"):
        with pytest.raises(ValidationError, match="rate"):
            limiter.set_rate(bad)  # type: ignore[arg-type]
    assert limiter.configured_rate == 500.0


async def test_at_rest() -> None:
    sim = SimTime()
    limiter = RateLimiter(10, clock=sim.clock, sleep=sim.sleep)
    assert limiter.at_rest
    await limiter.acquire()
    assert not limiter.at_rest  # the bucket is not full
    sim.now += 0.1
    assert limiter.at_rest
    limiter.slow_down()
    sim.now += 100
    assert not limiter.at_rest  # cut, until successes bring it back
    limiter.on_success()
    assert limiter.at_rest


# ---------------------------------------------------------------------------------------------
# one limiter, several event loops


def test_waiters_left_by_a_closed_loop_do_not_block_the_next_loop() -> None:
    sim = SimTime()

    async def stuck(_: float) -> None:
        await asyncio.get_running_loop().create_future()  # never wakes

    limiter = RateLimiter(1.0, burst=1, clock=sim.clock, sleep=stuck)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(limiter.acquire())
        head = first.create_task(limiter.acquire())  # sleeps for ever
        queued = first.create_task(limiter.acquire())  # waits its turn behind it
        first.run_until_complete(asyncio.sleep(0.01))
        assert limiter.waiting == 2
    finally:
        first.set_exception_handler(lambda *_: None)  # "Task was destroyed but is pending"
        first.close()  # the test suite's next loop, or asyncio.run's, starts here
    sim.now = 10.0

    async def later() -> None:
        async with asyncio.timeout(2):  # only turns a hang into a failure
            await limiter.acquire()

    asyncio.run(later())
    assert limiter.waiting == 0
    del head, queued
    gc.collect()


def test_waiters_of_a_stopped_loop_go_on_when_it_runs_again() -> None:
    sim = SimTime()
    limiter = RateLimiter(1.0, burst=1, clock=sim.clock, sleep=sim.sleep)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(limiter.acquire())
        blocked = asyncio.Event()

        async def sleep_until_set(_: float) -> None:
            await blocked.wait()

        limiter._sleep = sleep_until_set  # the head will sleep until the test says so
        head = first.create_task(limiter.acquire())
        queued = first.create_task(limiter.acquire())
        first.run_until_complete(asyncio.sleep(0.01))
        assert limiter.waiting == 2
        limiter._sleep = sim.sleep
        sim.now = 10.0

        async def other_loop() -> None:
            async with asyncio.timeout(2):
                await limiter.acquire()

        asyncio.run(other_loop())  # the stopped loop's waiters are no obstacle
        assert limiter.waiting == 0
        sim.now = 20.0
        blocked.set()
        first.run_until_complete(asyncio.wait_for(asyncio.gather(head, queued), 2))
        assert head.done() and queued.done()
        assert limiter.waiting == 0
    finally:
        first.close()


def test_two_threads_with_their_own_loops_share_one_limiter() -> None:
    limiter = RateLimiter(200.0, burst=1)  # real clock and sleep
    errors: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            async with asyncio.timeout(5):
                await asyncio.gather(*(limiter.acquire() for _ in range(20)))

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert limiter.waiting == 0
    assert elapsed >= 0.9 * 39 / 200  # 40 permits at 200/s: one bucket, not two


# ---------------------------------------------------------------------------------------------
# the real thing: the fake enforces 80 msg/s per channel and answers 130429 above it


async def test_two_clients_and_single_sends_of_one_key_stay_under_the_fake_s_limit(
    registry: ChannelLimits,
) -> None:
    stamps: list[float] = []

    def clock() -> float:  # the fake reads its clock once per admitted send
        now = time.monotonic()
        stamps.append(now)
        return now

    total = 300  # about 3.7 s at 80 msg/s
    async with (
        FakeDialog360(throughput=80, clock=clock, record_requests=False) as fake,
        SessionPool() as pool,
    ):
        bulk = Dialog360Client(KEY, base_url=fake.url)
        pooled = pool.client(KEY, base_url=fake.url)
        single = OnPremiseClient(KEY, base_url=fake.url)
        left = iter(range(total))
        to = numbers()

        async def worker(client: Dialog360Client | OnPremiseClient) -> None:
            for _ in left:
                await client.send_location(next(to), HQ)

        try:
            async with asyncio.timeout(30):  # a hang fails; nothing is timed here
                await asyncio.gather(
                    *(worker(bulk) for _ in range(8)),
                    *(worker(pooled) for _ in range(8)),
                    worker(single),  # a stream of single sends, one at a time
                )
        finally:
            await bulk.close()
            await single.close()
        stats = fake.stats()
    assert stats["sends"]["total"] == total
    assert stats["throttled"]["total"] == 0
    assert len(stamps) == total
    limiter = bulk.rate_limit
    assert isinstance(limiter, RateLimiter)
    burst = int(limiter.burst)
    # The steady rate the fake saw: the slope of sends over time after the first burst.
    steady = stamps[burst:]
    slope = statistics.linear_regression(steady, range(len(steady))).slope
    assert slope <= DEFAULT_RATE * 1.02
    # And no one-second window held more than a second's worth plus the burst. The stamps are
    # arrival times at the fake: on a loaded machine requests permitted on time can arrive
    # together, so 50 ms of arrival jitter (4 sends at 80/s) is allowed; the fake's own bucket
    # above throttled none.
    jitter = DEFAULT_RATE * 0.05
    for i, start in enumerate(stamps):
        inside = sum(1 for t in stamps[i:] if t < start + 1.0)
        assert inside <= DEFAULT_RATE * 1.02 + burst + jitter


def test_waiters_of_a_closed_loop_collected_outside_any_loop_raise_nothing() -> None:
    # Their ``finally`` runs when the garbage collector closes the coroutines, with no loop
    # running: handing the turn on must not raise there (it would be "Exception ignored").
    async def stuck(_: float) -> None:
        await asyncio.get_running_loop().create_future()

    limiter = RateLimiter(1.0, burst=1, clock=lambda: 0.0, sleep=stuck)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(limiter.acquire())
        tasks = [loop.create_task(limiter.acquire()) for _ in range(3)]
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.set_exception_handler(lambda *_: None)  # "Task was destroyed but is pending"
        loop.close()
    unraisable: list[Any] = []
    hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        del tasks
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    assert limiter.waiting == 0
