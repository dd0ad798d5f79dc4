"""A `taskiq worker` stopped by SIGTERM or SIGINT in the middle of a campaign: it leaves within
its shutdown timeout, and the other worker finishes the campaign with nothing sent twice.

The workers run as the README starts them (no ``--wait-tasks-timeout``: the worker itself must
not wait for its batches to run to their end). The idle timeout is longer than the tests, so the
campaign can only finish in time if the stopped worker hands its batches on at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path

import pytest

from dialog360_async.distributed import RedisUnavailableError

from ._harness import (
    LOOPS,
    RedisServer,
    TimedFake,
    Workers,
    sends_reach,
    start_campaign,
    worker_env,
)

KEYS = {"alpha": "alpha-s3cr3t-key-0123456789", "beta": "beta-s3cr3t-key-0123456789"}
SHUTDOWN_TIMEOUT = 3.0
MARGIN = 2.0  # interpreter and process teardown
README_ARGS = ("--workers", "1", "--max-fails", "3", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))


@pytest.fixture(params=LOOPS)
def worker_loop(request: pytest.FixtureRequest) -> str:
    """The event loop the workers run on: taskiq's choice (uvloop), or the standard one."""
    name: str = request.param
    return name


def on_loop(log: str, loop: str) -> bool:
    """Whether the worker that wrote ``log`` ran on ``loop`` (it names it at startup)."""
    line = next((line for line in log.splitlines() if "(event loop: " in line), "")
    return bool(line) and ("(event loop: uvloop." in line) == (loop == "uvloop")


def states(server: RedisServer, campaign_id: str) -> dict[str, str]:
    with server.client() as client:
        entries = client.hgetall(f"d360:campaign:{campaign_id}:ledger")
    return {key: json.loads(raw)["s"] for key, raw in entries.items()}


def wa_id(key: str) -> str:
    return "".join(c for c in key.partition(":")[0] if c.isdigit())


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT-to-the-group"],
)
async def test_a_signalled_worker_stops_at_once_and_the_other_one_finishes(
    redis_server: RedisServer, tmp_path: Path, worker_loop: str, signum: int, group: bool
) -> None:
    # 16 batches share each channel's 40 msg/s: a batch runs for ~20 s, far past the bound.
    per_channel, rate = 400, 40.0
    async with TimedFake(api_keys=KEYS.values(), throughput=None, engage_all=True) as fake:
        env = worker_env(
            redis_server.url, fake.url, KEYS, rate=rate, idle_timeout=120, shutdown_grace=2
        )
        with Workers(env, tmp_path, loop=worker_loop) as workers:
            workers.start(2, README_ARGS)
            await asyncio.to_thread(workers.wait_ready)
            run = start_campaign(redis_server.url, list(KEYS), per_channel)
            await sends_reach(fake, 100)
            sent_at = workers.signal(0, signum, group=group)
            exited_at = await asyncio.to_thread(workers.wait_exit, 0, SHUTDOWN_TIMEOUT + MARGIN + 5)
            summary = await asyncio.wait_for(run, 60)
            assert workers.alive(1)
            stopped_log = workers.log(0)
    assert on_loop(stopped_log, worker_loop), stopped_log[:3000]
    assert exited_at is not None, f"still running after the signal:\n{stopped_log[-3000:]}"
    took = exited_at - sent_at
    print(f"\n{signal.Signals(signum).name} ({worker_loop}): exited {took:.2f} s after the signal")
    assert took <= SHUTDOWN_TIMEOUT + MARGIN, stopped_log[-3000:]
    assert workers.processes[0].returncode == 0
    assert "left for another worker" in stopped_log  # it did stop part way, and handed on
    total = per_channel * len(KEYS)
    assert summary.finished and summary.messages == total
    # A clean stop leaves nothing in doubt: what was in flight finished within the grace,
    # what waited for the rate was never claimed.
    assert (summary.sent, summary.unknown, summary.failed, summary.cancelled) == (total, 0, 0, 0)
    found = states(redis_server, summary.campaign_id)
    assert len(found) == total and set(found.values()) == {"sent"}  # one outcome each
    assert fake.duplicates() == {}
    assert sum(fake.sends.values()) == total
    assert {wa_id(key) for key in found} == set(fake.sends)


async def test_sends_in_flight_past_the_grace_end_unknown_and_are_never_resent(
    redis_server: RedisServer, tmp_path: Path, worker_loop: str
) -> None:
    per_channel = 150
    # Every answer takes 1.5 s, the grace is 0.3 s: whatever is in flight at the signal is
    # abandoned, settled `unknown`, and must not be sent again by the worker that finishes.
    async with TimedFake(
        api_keys=KEYS.values(), throughput=None, engage_all=True, latency=1.5
    ) as fake:
        env = worker_env(
            redis_server.url,
            fake.url,
            KEYS,
            rate=1000,
            idle_timeout=120,
            shutdown_grace=0.3,
            worker_batches=2,
            concurrency=4,
        )
        with Workers(env, tmp_path, loop=worker_loop) as workers:
            workers.start(1, README_ARGS)
            await asyncio.to_thread(workers.wait_ready)
            run = start_campaign(redis_server.url, list(KEYS), per_channel)
            await sends_reach(fake, 8)
            # The signal must find sends in flight: right after a round of answers the worker
            # may not have sent the next ones yet (seen under CI load), so wait for them.
            for _ in range(500):
                if fake.in_flight >= 1:
                    break
                await asyncio.sleep(0.002)
            assert fake.in_flight >= 1, "no send in flight to cut off"
            sent_at = workers.signal(0, signal.SIGTERM)
            exited_at = await asyncio.to_thread(workers.wait_exit, 0, SHUTDOWN_TIMEOUT + 10)
            stopped_log = workers.log(0)
            assert on_loop(stopped_log, worker_loop), stopped_log[:3000]
            assert exited_at is not None, stopped_log[-3000:]
            took = exited_at - sent_at
            fake.latency = 0.0
            workers.start(1, README_ARGS)  # the one that finishes the campaign
            summary = await asyncio.wait_for(run, 60)
    print(f"\nSIGTERM with sends in flight ({worker_loop}): exited {took:.2f} s after the signal")
    assert took <= SHUTDOWN_TIMEOUT + MARGIN
    total = per_channel * len(KEYS)
    found = states(redis_server, summary.campaign_id)
    assert summary.finished and len(found) == total
    unknown = [key for key, state in found.items() if state == "unknown"]
    # Two batches of four sends in flight each, at most, when the signal came.
    assert 0 < len(unknown) == summary.unknown <= 2 * 4
    assert set(found.values()) == {"sent", "unknown"}
    assert summary.sent == total - len(unknown)
    assert fake.duplicates() == {}
    for key in unknown:  # the fake may have taken it (late), but only once
        assert fake.sends.get(wa_id(key), 0) <= 1
    for key, state in found.items():
        if state == "sent":
            assert fake.sends[wa_id(key)] == 1


@pytest.mark.parametrize("busy", [True, False], ids=["sends-in-flight", "idle"])
async def test_a_worker_stops_in_bounded_time_with_redis_down(
    redis_server: RedisServer, tmp_path: Path, worker_loop: str, busy: bool
) -> None:
    # Busy: every answer takes 1 s, so sends are in flight when Redis dies; they finish within
    # the grace (5 s by default), and their outcomes, which cannot be recorded, stay in doubt
    # without the worker waiting for a Redis that is gone.
    latency = 1.0 if busy else 0.0
    async with TimedFake(
        api_keys=KEYS.values(), throughput=None, engage_all=True, latency=latency
    ) as fake:
        env = worker_env(redis_server.url, fake.url, KEYS, rate=1000)
        with Workers(env, tmp_path, loop=worker_loop) as workers:
            workers.start(1, README_ARGS)
            await asyncio.to_thread(workers.wait_ready)
            run = start_campaign(redis_server.url, list(KEYS), 400 if busy else 50)
            if busy:
                await sends_reach(fake, 20)
            else:
                await asyncio.wait_for(run, 30)
            redis_server.stop(kill=True)
            if not busy:
                await asyncio.sleep(1.0)  # it notices: its reads fail, and it retries
            sent_at = workers.signal(0, signal.SIGTERM)
            exited_at = await asyncio.to_thread(workers.wait_exit, 0, 40)
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisUnavailableError):
                await run  # the producer has no Redis either
            log = workers.log(0)
    assert on_loop(log, worker_loop), log[:3000]
    assert exited_at is not None, log[-3000:]
    took = exited_at - sent_at
    state = "busy" if busy else "idle"
    print(f"\nSIGTERM with Redis down ({state}, {worker_loop}): exited {took:.2f} s after")
    assert took <= latency + MARGIN, log[-3000:]
    assert "unreachable" in log
    assert fake.duplicates() == {}
