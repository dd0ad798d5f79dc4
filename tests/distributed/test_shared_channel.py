"""Two `taskiq worker`s pacing one channel at the same moment, and the channel keeps its rate.

The evidence is recorded while the campaign runs: the fake notes when it accepted each message,
and each message's ledger entry keeps the owner token of its claim (worker host:pid, batch).
From those, every batch's send interval per worker; the two workers' intervals overlap.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dialog360_async.distributed import broadcast, make_broker

from ._harness import RedisServer, TimedFake, Workers, campaign, rates, worker_env

KEYS = {"shared": "k3y-shared-s3cr3t-0123456789abcdef"}


def owners(server: RedisServer, campaign_id: str) -> dict[str, tuple[str, str]]:
    """wa_id -> (worker, batch) of the claim that sent it."""
    with server.client() as client:
        entries: dict[str, str] = client.hgetall(f"d360:campaign:{campaign_id}:ledger")
    found = {}
    for key, raw in entries.items():
        worker, batch = json.loads(raw)["o"].split("/")[:2]
        found["".join(c for c in key.partition(":")[0] if c.isdigit())] = (worker, batch)
    return found


def both_busy(spans: dict[str, list[tuple[float, float]]]) -> float:
    """Seconds during which every worker had a batch of the channel between its first and its
    last accepted send."""
    events = sorted(
        (t, step, worker)
        for worker, intervals in spans.items()
        for start, end in intervals
        for t, step in ((start, 1), (end, -1))
    )
    open_ = dict.fromkeys(spans, 0)
    total, since = 0.0, None
    for t, step, worker in events:
        if since is not None:
            total += t - since
            since = None
        open_[worker] += step
        if all(open_.values()):
            since = t
    return total


async def test_two_workers_pace_the_same_channel_at_once_within_2_percent(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    per_channel, rate = 1500, 100.0
    async with TimedFake(api_keys=KEYS.values(), throughput=rate, engage_all=True) as fake:
        env = worker_env(redis_server.url, fake.url, KEYS, rate=rate, worker_batches=4)
        with Workers(env, tmp_path) as workers:
            workers.start(2)
            await asyncio.to_thread(workers.wait_ready)
            summary = await broadcast(
                campaign(list(KEYS), per_channel),
                broker=make_broker(redis_server.url),
                batch_size=50,
                stall_timeout=60,
            )
    assert summary.finished and summary.sent == per_channel, summary
    assert fake.duplicates() == {} and sum(fake.sends.values()) == per_channel
    assert fake.throttled() == 0
    # Who sent what, and when: each batch's interval, per worker.
    sent_by = owners(redis_server, summary.campaign_id)
    batches: dict[tuple[str, str], list[float]] = {}
    for stamp, wa_id in fake.accepted:
        batches.setdefault(sent_by[wa_id], []).append(stamp)
    spans: dict[str, list[tuple[float, float]]] = {}
    for (worker, _), stamps in batches.items():
        spans.setdefault(worker, []).append((min(stamps), max(stamps)))
    assert len(spans) == 2, spans.keys()  # both workers sent on the one channel
    first, last = fake.accepted[0][0], fake.accepted[-1][0]
    together = both_busy(spans)
    # Not one after the other: most of the campaign, both held batches of the channel.
    assert together >= 0.5 * (last - first), (together, last - first)
    shares = {worker: sum(1 for w, _ in sent_by.values() if w == worker) for worker in spans}
    assert all(count >= per_channel // 4 for count in shares.values()), shares
    (achieved,) = rates(fake.accepted).values()
    assert abs(achieved / rate - 1) <= 0.02, achieved
    print(f"\n{achieved:.2f} msg/s; both busy {together:.1f} of {last - first:.1f} s; {shares}")
