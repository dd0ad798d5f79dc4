"""Real `taskiq worker` processes against the bundled fake server, with its throughput limit on.

The fake runs in the test's process; each channel's achieved rate is measured from the times
the fake accepted its messages: (accepted - 1) / (last - first acceptance).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialog360_async.distributed import CampaignSummary, broadcast, campaign_status, make_broker

from ._harness import (
    RedisServer,
    TimedFake,
    Workers,
    campaign,
    channel_of,
    rates,
    sends_reach,
    start_campaign,
    worker_env,
)

KEYS = {f"ch{n}": f"k3y-{n}-s3cr3t-0123456789abcdef" for n in range(6)}


def ledger(server: RedisServer, campaign_id: str) -> dict[str, str]:
    with server.client() as client:
        entries: dict[str, str] = client.hgetall(f"d360:campaign:{campaign_id}:ledger")
    return entries


def wa_id(key: str) -> str:
    return "".join(c for c in key.partition(":")[0] if c.isdigit())


async def test_three_workers_hold_each_channel_at_80_per_second(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    per_channel, rate = 2000, 80.0
    async with TimedFake(api_keys=KEYS.values(), throughput=rate, engage_all=True) as fake:
        env = worker_env(redis_server.url, fake.url, KEYS, rate=rate, worker_batches=8)
        with Workers(env, tmp_path) as workers:
            workers.start(3)
            await asyncio.to_thread(workers.wait_ready)
            broker = make_broker(redis_server.url)
            seen: list[CampaignSummary] = []
            summary = await broadcast(
                campaign(list(KEYS), per_channel),
                broker=broker,
                batch_size=100,
                stall_timeout=60,
                on_progress=seen.append,
            )
            logs = [workers.log(n) for n in range(3)]
    total = per_channel * len(KEYS)
    assert summary.finished
    assert (summary.messages, summary.sent) == (total, total), summary
    assert (summary.failed, summary.unknown, summary.cancelled, summary.in_flight) == (0, 0, 0, 0)
    # Exactly one outcome per message, all `sent`, each accepted exactly once by the fake.
    entries = ledger(redis_server, summary.campaign_id)
    assert len(entries) == total
    assert all('"s":"sent"' in entry for entry in entries.values())
    assert fake.duplicates() == {}
    assert sum(fake.sends.values()) == total
    assert fake.throttled() == 0  # no 130429 answer at all
    achieved = rates(fake.accepted)
    assert set(achieved) == set(range(len(KEYS)))
    for channel, value in achieved.items():
        assert abs(value / rate - 1) <= 0.05, (channel, value, achieved)
    # The three workers shared the work; progress was readable while it ran.
    assert all("of campaign" in log for log in logs)
    assert any(0 < s.sent < total for s in seen)
    status = await campaign_status(summary.campaign_id, redis_server.url)
    assert status["state"] == "finished"
    assert status["channels"]["ch0"] == {"sent": per_channel}
    print(f"\nachieved msg/s per channel: { {c: round(v, 2) for c, v in achieved.items()} }")


async def test_killed_worker_loses_nothing_and_duplicates_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    per_channel, rate = 600, 200.0
    keys = dict(list(KEYS.items())[:3])
    async with TimedFake(api_keys=keys.values(), throughput=rate, engage_all=True) as fake:
        env = worker_env(
            redis_server.url, fake.url, keys, rate=rate, worker_batches=4, idle_timeout=2
        )
        with Workers(env, tmp_path) as workers:
            workers.start(3)
            await asyncio.to_thread(workers.wait_ready)
            run = start_campaign(redis_server.url, list(keys), per_channel)
            await sends_reach(fake, 400)
            workers.kill(0)
            killed_at = sum(fake.sends.values())
            summary = await asyncio.wait_for(run, 60)
            assert workers.alive(1) and workers.alive(2)
            took_over = workers.log(1) + workers.log(2)
    total = per_channel * len(keys)
    assert summary.finished and summary.messages == total
    assert 0 < killed_at < total
    entries = ledger(redis_server, summary.campaign_id)
    assert len(entries) == total  # one outcome per message
    states = {key: entry.split('"s":"')[1].split('"')[0] for key, entry in entries.items()}
    assert set(states.values()) <= {"sent", "unknown"}, summary
    assert fake.duplicates() == {}
    for key, state in states.items():
        sends = fake.sends.get(wa_id(key), 0)
        # sent: exactly once; unknown (claimed by the dead worker): at most once.
        assert sends == 1 if state == "sent" else sends <= 1, (key, state, sends)
    unknown = sum(1 for state in states.values() if state == "unknown")
    assert unknown == summary.unknown <= 4 * 8  # its batches x sends in flight per batch
    assert summary.sent == total - unknown
    assert "taking over message" in took_over
    assert {channel_of(w) for w in fake.sends} == {0, 1, 2}
    print(f"\nkilled after {killed_at} sends; {unknown} unknown; {summary.sent} sent")
