"""The Lua token bucket against a reference model, for any sequence of calls and clock steps.

The tests pass the time into the script, so the clock is theirs; everything else runs in a
real redis-server through :class:`RedisRateLimiter`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage
from dialog360_async.distributed import RedisRateLimiter
from dialog360_async.testing import FakeDialog360

from ._harness import RedisServer

_T = TypeVar("_T")
C = 0.4
EPOCH = 1_700_000_000.0  # real epoch-sized times, as the server clock gives
_names: Iterator[int] = itertools.count()


class BucketModel:
    """What the RESERVE and CUT scripts should do, in plain Python."""

    def __init__(self, rate: float, burst: float, min_rate: float) -> None:
        self.conf, self.burst, self.floor = rate, burst, min(min_rate, rate)
        self.tat: float | None = None
        self.rate = rate
        self.cut_at: float | None = None
        self.wmax = self.k = 0.0

    def _recovered(self, now: float) -> float:
        rate = self.rate
        if self.cut_at is not None and rate < self.conf and now > self.cut_at:
            target = C * (now - self.cut_at - self.k) ** 3 + self.wmax
            if target > rate:
                rate = min(self.conf, target)
        return rate

    def reserve(self, now: float) -> tuple[float, float]:
        self.rate = rate = self._recovered(now)
        interval = 1 / rate
        tolerance = (max(1.0, self.burst * rate / self.conf) - 1) * interval
        tat = now if self.tat is None else self.tat
        at = max(now, tat - tolerance)
        self.tat = max(tat, now) + interval
        return at - now, rate

    def cut(self, now: float, factor: float) -> tuple[bool, float]:
        rate = self._recovered(now)
        if self.cut_at is not None and now - self.cut_at < 1.0:
            return False, rate  # the script leaves the state as it was
        new = max(self.floor, rate * factor)
        self.k = ((rate - new) / C) ** (1 / 3)
        self.wmax, self.rate, self.cut_at = rate, new, now
        return True, new


def run(redis_server: RedisServer, body: Callable[[Redis], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


steps = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "reserve", "reserve", "cut"]),
        st.one_of(st.floats(0, 0.05), st.floats(0, 3), st.floats(-0.5, 0)),  # clock steps
        st.floats(0.1, 0.95),
    ),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.one_of(st.sampled_from([1.0, 80.0, 1000.0]), st.floats(0.5, 1000)),
    burst=st.one_of(st.none(), st.floats(1, 50)),
    min_rate=st.floats(0.1, 5),
    ops=steps,
)
def test_script_matches_the_model(
    shared_redis: RedisServer,
    rate: float,
    burst: float | None,
    min_rate: float,
    ops: list[tuple[str, float, float]],
) -> None:
    async def body(client: Redis) -> None:
        limiter = RedisRateLimiter(
            client, f"prop-{next(_names)}", rate, burst=burst, min_rate=min_rate
        )
        model = BucketModel(rate, max(1.0, rate / 10) if burst is None else burst, min_rate)
        now = EPOCH
        for op, step, factor in ops:
            now += step
            if op == "reserve":
                wait = await limiter.reserve(now=now)
                expected_wait, expected_rate = model.reserve(now)
                assert wait == pytest.approx(expected_wait, rel=1e-9, abs=1e-9)
            else:
                done = await limiter.cut(factor, now=now)
                expected_done, expected_rate = model.cut(now, factor)
                assert done == expected_done
            assert limiter.rate == pytest.approx(expected_rate, rel=1e-9)
            assert min(min_rate, rate) - 1e-9 <= limiter.rate <= rate + 1e-9

    run(shared_redis, body)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.floats(1, 1000),
    gaps=st.lists(st.floats(0, 0.2), min_size=2, max_size=80),
)
def test_no_window_gets_more_than_burst_plus_rate(
    shared_redis: RedisServer, rate: float, gaps: list[float]
) -> None:
    async def body(client: Redis) -> None:
        limiter = RedisRateLimiter(client, f"window-{next(_names)}", rate)
        burst = max(1.0, rate / 10)
        # Small times here: at epoch size each addition rounds by ~1e-7 s, which adds up.
        now, permits = 1000.0, []
        for gap in gaps:
            now += gap
            permits.append(now + await limiter.reserve(now=now))
        assert permits == sorted(permits)
        for i, j in itertools.combinations(range(len(permits)), 2):
            # j - i + 1 permits fell in [permits[i], permits[j]]
            assert j - i + 1 <= burst + (permits[j] - permits[i]) * rate + 1e-6

    run(shared_redis, body)


async def test_limiters_of_many_processes_share_one_rate(shared_redis: RedisServer) -> None:
    # Three limiters with their own connections stand for three worker processes.
    clients = [Redis.from_url(shared_redis.url) for _ in range(3)]
    try:
        limiters = [RedisRateLimiter(c, "shared-rate", 200.0) for c in clients]
        stamps: list[float] = []
        loop = asyncio.get_running_loop()

        async def take(limiter: RedisRateLimiter) -> None:
            for _ in range(40):
                await limiter.acquire()
                stamps.append(loop.time())

        await asyncio.gather(*(take(limiter) for limiter in limiters for _ in range(4)))
    finally:
        for client in clients:
            await client.aclose()
    stamps.sort()
    burst = 20
    steady = (len(stamps) - burst) / (stamps[-1] - stamps[burst - 1])
    assert steady == pytest.approx(200.0, rel=0.03)


async def test_slow_down_is_shared_and_recovers_by_time(shared_redis: RedisServer) -> None:
    client = Redis.from_url(shared_redis.url)
    try:
        first = RedisRateLimiter(client, "cut-shared", 80.0)
        second = RedisRateLimiter(client, "cut-shared", 80.0)
        await first.reserve(now=EPOCH)
        assert await first.cut(0.5, now=EPOCH) is True
        await second.reserve(now=EPOCH)
        assert second.rate == 40.0  # the other worker sees the cut
        assert await second.cut(0.5, now=EPOCH + 0.5) is False  # one signal per second
        await second.reserve(now=EPOCH + 0.5)
        assert 40.0 < second.rate < 80.0  # recovering
        await second.reserve(now=EPOCH + 60)
        assert second.rate == 80.0  # recovered by time, with no success reported
        first.slow_down()  # sync, as the Limiter protocol wants: runs in the background
        await first.aclose()
        assert first.rate == pytest.approx(56.0, rel=0.01)
    finally:
        await client.aclose()


async def test_bulk_sender_uses_it_as_the_clients_limiter(shared_redis: RedisServer) -> None:
    # One permit per message, and the pace they imply: a run cannot beat the bucket however
    # fast the machine, and a slow machine only adds time, so the bound on time is one-sided
    # and the count of permits carries the rest (a wall-clock upper bound failed on loaded CI).
    class Counted(RedisRateLimiter):
        reserved = 0

        async def reserve(self, now: float | None = None) -> float:
            Counted.reserved += 1
            return await super().reserve(now)

    client = Redis.from_url(shared_redis.url)
    where = Location(latitude=1.0, longitude=2.0)
    try:
        limiter = Counted(client, "bulk-check", 400.0)
        async with FakeDialog360(throughput=400.0) as fake:
            async with Dialog360Client("k", base_url=fake.url, rate_limit=limiter) as api:
                messages = (LocationMessage(to=f"+1555{n:07d}", location=where) for n in range(200))
                summary = await BulkSender(api, concurrency=16).send_all(messages)
        assert summary.sent == 200
        assert Counted.reserved == 200
        assert summary.elapsed >= (200 - 40) / 400.0 * 0.95
    finally:
        await client.aclose()
