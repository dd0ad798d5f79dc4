"""One worker's batch runner in this process: a takeover spends no rate permit on what was
sent before, and a stop ends a batch at once without leaving anything claimed; and a worker's
garbage-collector settings (in a process of their own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from dialog360_async import Location, LocationMessage
from dialog360_async._converter import unstructure
from dialog360_async._secret import Secret
from dialog360_async.distributed import BrokerSettings, RedisLedger, WorkerSettings
from dialog360_async.distributed._redis import connect
from dialog360_async.distributed._worker import WorkerRuntime
from dialog360_async.testing import FakeDialog360

from ._harness import RedisServer, sends_reach

KEY = "shop-s3cr3t-key-0123456789"
WHERE = Location(latitude=52.52, longitude=13.40)


def items(count: int) -> list[list[Any]]:
    return [
        [f"key-{n}", unstructure(LocationMessage(to=f"+1555{n:07d}", location=WHERE))]
        for n in range(count)
    ]


def runtime(server: RedisServer, fake: FakeDialog360, rate: float, grace: float) -> WorkerRuntime:
    return WorkerRuntime(
        BrokerSettings(redis_url=server.url, shutdown_grace=grace),
        WorkerSettings(channels={"shop": Secret(KEY)}, base_url=fake.url, rate=rate, concurrency=4),
    )


async def new_campaign(server: RedisServer, campaign: str) -> None:
    redis = connect(server.url)
    await redis.hset(f"d360:campaign:{campaign}:meta", "created", f"{time.time():.3f}")
    await redis.aclose()


def ledger_states(server: RedisServer, campaign: str) -> dict[str, str]:
    with server.client() as client:
        raw = client.hgetall(f"d360:campaign:{campaign}:ledger")
    return {key: json.loads(entry)["s"] for key, entry in raw.items()}


async def test_a_taken_over_batch_takes_permits_only_for_what_it_sends(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, batch = "takeover-1", items(40)
    await new_campaign(redis_server, campaign)
    # The dead worker sent the first 25 and had 5 more in flight when it died.
    redis = connect(redis_server.url)
    dead = RedisLedger(redis, campaign, "shop", owner="dead-worker")
    for key, _ in batch[:30]:
        assert await dead.claim(key) is None
    for key, _ in batch[:25]:
        await dead.settle(key, "sent", message_id=f"wamid.{key}")
    await dead.flush()
    permits = 0
    call_many = RedisLedger._call_many

    async def counted(self: RedisLedger, items: list[Any]) -> list[object]:
        # The script takes a permit for each unpaid key it claims or makes wait ("w:").
        nonlocal permits
        verdicts = await call_many(self, items)
        for item, verdict in zip(items, verdicts, strict=True):
            if len(item) == 4:  # a claim: key, token, digest, paid
                permits += not item[3] and (verdict == "" or str(verdict).startswith("w:"))
        return verdicts

    monkeypatch.setattr(RedisLedger, "_call_many", counted)
    async with FakeDialog360(api_keys=[KEY], throughput=None) as fake:
        worker = runtime(redis_server, fake, rate=1000.0, grace=5.0)
        counts = await worker.send_batch(campaign, "shop", "shop:1:x", batch)
        await worker.shutdown()
    await redis.aclose()
    assert counts == {"sent": 10, "skipped": 25, "unknown": 5}
    assert permits == 10  # one per message actually sent; none for the 30 refused
    assert sum(fake.sends.values()) == 10 and fake.duplicates() == {}
    states = ledger_states(redis_server, campaign)
    assert list(states.values()).count("sent") == 35
    assert list(states.values()).count("unknown") == 5


async def test_a_stop_ends_the_batch_at_once_and_leaves_nothing_claimed(
    redis_server: RedisServer,
) -> None:
    campaign, batch = "stop-1", items(60)
    await new_campaign(redis_server, campaign)
    async with FakeDialog360(api_keys=[KEY], throughput=None) as fake:
        worker = runtime(redis_server, fake, rate=20.0, grace=5.0)  # 3 s for the whole batch
        running = asyncio.create_task(worker.send_batch(campaign, "shop", "shop:1:y", batch))
        await sends_reach(fake, 10)
        stopped_at = time.monotonic()
        worker.stop()
        counts = await asyncio.wait_for(running, 5)
        took = time.monotonic() - stopped_at
        assert await worker.send_batch(campaign, "shop", "shop:2:z", batch) is None
        await worker.shutdown()
    assert counts is None  # not finished: the broker hands it on
    assert took < 1.0  # the sends waiting for the rate do not wait for it any more
    states = ledger_states(redis_server, campaign)
    sent = [key for key, state in states.items() if state == "sent"]
    assert len(sent) == sum(fake.sends.values()) < len(batch)
    # Nothing is left in doubt: a claim is made only after its permit, and what was in
    # flight finished within the grace. Keys never claimed are not in the ledger at all;
    # a `cancelled` one is free for the next worker.
    assert set(states.values()) <= {"sent", "cancelled"}
    with redis_server.client() as client:
        done = client.scard(f"d360:campaign:{campaign}:done")
    assert done == 0  # the batch was not counted as finished


async def test_a_stop_does_not_wait_for_redis_to_come_back(redis_server: RedisServer) -> None:
    campaign = "stop-2"
    await new_campaign(redis_server, campaign)
    async with FakeDialog360(api_keys=[KEY], throughput=None) as fake:
        worker = runtime(redis_server, fake, rate=1000.0, grace=5.0)
        redis_server.stop(kill=True)
        # Its first Redis call (is the channel halted?) rides out the outage, for 30 s...
        running = asyncio.create_task(worker.send_batch(campaign, "shop", "shop:1:w", items(5)))
        await asyncio.sleep(0.5)
        assert not running.done()
        stopped_at = time.monotonic()
        worker.stop()  # ...unless the worker stops
        assert await asyncio.wait_for(running, 5) is None
        took = time.monotonic() - stopped_at
        await worker.shutdown()
    assert took < 0.5
    assert sum(fake.sends.values()) == 0


def test_tasks_cross_between_taskiq_json_and_the_brokers_serializer() -> None:
    # A producer or a worker of an earlier release (taskiq's stdlib JSON) and one of this
    # release (the project's JSON) read each other's tasks: during a rolling upgrade too.
    from taskiq.serializers import JSONSerializer

    from dialog360_async.distributed import make_broker

    ours, theirs = make_broker("redis://127.0.0.1:1/0").serializer, JSONSerializer()
    task = {"args": ["c\u00e9", "ch", "b:1", items(3)], "kwargs": {}, "labels": {"x": "\U0001f4ac"}}
    assert ours.loadb(theirs.dumpb(task)) == task
    assert theirs.loadb(ours.dumpb(task)) == task
    assert type(ours).__module__.startswith("dialog360_async")


def test_a_worker_freezes_its_startup_objects_and_collects_the_young_less_often() -> None:
    # In a process of its own: the settings are process-wide.
    script = (
        "import asyncio, gc, json\n"
        "from dialog360_async._secret import Secret\n"
        "from dialog360_async.distributed import BrokerSettings, WorkerSettings\n"
        "from dialog360_async.distributed._worker import GC_THRESHOLD, WorkerRuntime\n"
        "before = gc.get_threshold()\n"
        "runtime = WorkerRuntime(BrokerSettings(redis_url='redis://127.0.0.1:1'),\n"
        "                        WorkerSettings(channels={'shop': Secret('k' * 20)}))\n"
        "asyncio.run(runtime.startup())\n"
        "print(json.dumps([before, gc.get_threshold(), GC_THRESHOLD, gc.get_freeze_count()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after, threshold, frozen = json.loads(done.stdout)
    assert after == [threshold, before[1], before[2]]
    assert threshold > before[0]
    assert frozen > 10_000  # the modules and objects of startup
