"""Redis restarts in the middle of a campaign: with its data (AOF) and without (state lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialog360_async.distributed import CampaignLostError, broadcast, make_broker

from ._harness import (
    RedisServer,
    TimedFake,
    Workers,
    campaign,
    sends_reach,
    start_campaign,
    worker_env,
)

KEYS = {"alpha": "alpha-s3cr3t-key-0123456789", "beta": "beta-s3cr3t-key-0123456789"}


async def test_restart_with_persistence_completes_without_duplicates(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    per_channel, rate = 600, 200.0
    async with TimedFake(api_keys=KEYS.values(), throughput=rate, engage_all=True) as fake:
        env = worker_env(persistent_redis.url, fake.url, KEYS, rate=rate, idle_timeout=2)
        with Workers(env, tmp_path) as workers:
            workers.start(2)
            await asyncio.to_thread(workers.wait_ready)
            run = start_campaign(persistent_redis.url, list(KEYS), per_channel)
            await sends_reach(fake, 300)
            await asyncio.to_thread(persistent_redis.restart, kill=True)  # SIGKILL, then start
            summary = await asyncio.wait_for(run, 60)
            assert workers.alive(0) and workers.alive(1)
    total = per_channel * len(KEYS)
    assert summary.finished and summary.messages == total
    assert fake.duplicates() == {}
    assert summary.sent + summary.unknown == total, summary
    assert summary.sent <= sum(fake.sends.values()) <= total
    with persistent_redis.client() as client:
        assert client.hlen(f"d360:campaign:{summary.campaign_id}:ledger") == total
    print(f"\nafter a restart with AOF: {summary.sent} sent, {summary.unknown} unknown")


async def test_restart_without_persistence_fails_clearly_and_sends_nothing_twice(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    per_channel, rate = 1000, 200.0
    async with TimedFake(api_keys=KEYS.values(), throughput=rate, engage_all=True) as fake:
        env = worker_env(redis_server.url, fake.url, KEYS, rate=rate, idle_timeout=2)
        with Workers(env, tmp_path) as workers:
            workers.start(2)
            await asyncio.to_thread(workers.wait_ready)
            broker = make_broker(redis_server.url)
            run = asyncio.create_task(
                broadcast(
                    campaign(list(KEYS), per_channel),
                    broker=broker,
                    batch_size=50,
                    poll=0.2,
                    stall_timeout=60,
                )
            )
            await sends_reach(fake, 300)
            await asyncio.to_thread(redis_server.restart, kill=True)  # comes back empty
            with pytest.raises(CampaignLostError, match=r"vanished|not in Redis"):
                await asyncio.wait_for(run, 60)
            lost_at = sum(fake.sends.values())
            # The workers stayed up and reconnected: a new campaign goes through them.
            assert workers.alive(0) and workers.alive(1)
            again = await asyncio.wait_for(
                broadcast(
                    ((name, m.__class__(to="+1555" + m.to[-7:], location=m.location))
                     for name, m in campaign(list(KEYS), 50)),
                    broker=broker,
                    batch_size=25,
                    poll=0.2,
                    stall_timeout=30,
                ),
                60,
            )  # fmt: skip
    assert again.finished and again.sent == 100
    assert fake.duplicates() == {}
    # Batches running when the state vanished stopped claiming: little was sent after it.
    assert lost_at <= per_channel * len(KEYS)
    assert sum(fake.sends.values()) - 100 - lost_at <= 2 * 8 * 8
    print(f"\nstate lost after {lost_at} sends; {sum(fake.sends.values()) - 100} in all")
