"""Delivery truth of distributed campaigns: status webhooks merged into the ledger in Redis by a
`RedisStore`, and `campaign_status` reporting them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from dialog360_async import ErrorDetail
from dialog360_async.distributed import (
    RedisLedger,
    RedisStore,
    broadcast,
    campaign_status,
    make_broker,
)
from dialog360_async.distributed._keys import callback_tag
from dialog360_async.testing import FakeResponse, WebhookPlan
from dialog360_async.webhooks import (
    InboundMessage,
    Notification,
    StatusUpdate,
    WebhookReceiver,
    WebhookStore,
)

from ._harness import RedisServer, TimedFake, Workers, campaign, channel_of, worker_env

CAMPAIGN = "delivery-test"


def status(
    wamid: str, value: str, *, tag: str | None = None, code: int | None = None
) -> StatusUpdate:
    errors = (ErrorDetail(code=code, message="failed"),) if value == "failed" else ()
    return StatusUpdate(
        message_id=wamid, status=value, timestamp=1, callback_data=tag, errors=errors
    )


def hook(*statuses: StatusUpdate, messages: tuple[InboundMessage, ...] = ()) -> Notification:
    return Notification(statuses=statuses, messages=messages)


async def entry(redis: Redis, key: str) -> dict[str, Any]:
    raw = await redis.hget(f"d360:campaign:{CAMPAIGN}:ledger", key)
    assert raw is not None
    found: dict[str, Any] = json.loads(raw)
    return found


def delivery(found: dict[str, Any]) -> dict[str, Any]:
    names = ("delivered", "read", "undelivered", "undelivered_codes", "unknown_settled")
    return {name: found[name] for name in names}


async def sent(ledger: RedisLedger, key: str, wamid: str) -> None:
    assert await ledger.claim(key) is None
    await ledger.settle(key, "sent", message_id=wamid)
    await ledger.flush()


async def test_statuses_merge_by_rank_and_a_failure_is_kept(
    redis: Redis, shared_redis: RedisServer
) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    store = RedisStore(redis)
    assert isinstance(store, WebhookStore)
    for key, wamid in (("k1", "wamid.1"), ("k2", "wamid.2"), ("k3", "wamid.3")):
        await sent(ledger, key, wamid)
    await store.record_webhook(hook(status("wamid.1", "delivered"), status("wamid.1", "sent")))
    await store.record_webhook(hook(status("wamid.1", "read"), status("wamid.2", "read")))
    # A failed status keeps its code whatever comes after; a late `sent` changes nothing.
    await store.record_webhook(hook(status("wamid.3", "failed", code=131049)))
    await store.record_webhook(hook(status("wamid.3", "sent"), status("wamid.3", "delivered")))
    await store.record_webhook(hook(status("wamid.1", "deleted"), status("wamid.1", "warning")))
    assert ((await entry(redis, "k1"))["d"], (await entry(redis, "k2"))["d"]) == ("read", "read")
    third = await entry(redis, "k3")
    assert (third["s"], third["d"], third["f"]) == ("sent", "delivered", "131049")
    found = await campaign_status(CAMPAIGN, shared_redis.url)
    # read implies delivered (wamid.2 never had a `delivered`); wamid.3 failed but also arrived.
    assert delivery(found) == {
        "delivered": 3,
        "read": 2,
        "undelivered": 1,
        "undelivered_codes": {"131049": 1},
        "unknown_settled": 0,
    }
    assert found["sent"] == 3
    assert found["channels"] == {"ch": {"sent": 3, "delivered": 3, "read": 2, "undelivered": 1}}


async def test_duplicates_are_dropped_across_stores_and_a_redis_restart(
    persistent_redis: RedisServer,
) -> None:
    first = RedisStore(persistent_redis.url)
    inbound = InboundMessage(message_id="wamid.in", wa_id="4915100", type="text", timestamp=1)
    once = hook(status("wamid.a", "sent"), status("wamid.a", "delivered"), messages=(inbound,))
    assert await first.record_webhook(once) == once
    # Within one call, and across concurrent calls, a key is new once.
    twice = hook(status("wamid.b", "sent"), status("wamid.b", "sent"))
    assert (await first.record_webhook(twice)).statuses == (status("wamid.b", "sent"),)
    racing = hook(status("wamid.c", "read"))
    results = await asyncio.gather(*(first.record_webhook(racing) for _ in range(20)))
    assert sum(len(r.statuses) for r in results) == 1
    await first.aclose()
    persistent_redis.restart(kill=True)  # the append-only file keeps what was acknowledged
    async with RedisStore(persistent_redis.url) as second:
        assert await second.record_webhook(once) == hook()
        mixed = hook(status("wamid.a", "read"), status("wamid.a", "delivered"))
        assert (await second.record_webhook(mixed)).statuses == (status("wamid.a", "read"),)
        assert (await second.record_webhook(racing)).statuses == ()
        assert await second.record_webhook(hook()) == hook()


async def test_dedup_expires_after_the_ttl(redis: Redis) -> None:
    store = RedisStore(redis, ttl=1)
    once = hook(status("wamid.ttl", "sent"))
    assert (await store.record_webhook(once)).statuses == once.statuses
    assert 0 < await redis.ttl("d360:wamid:wamid.ttl") <= 1
    await redis.delete("d360:wamid:wamid.ttl")  # as Redis does when the ttl runs out
    assert (await store.record_webhook(once)).statuses == once.statuses


async def test_an_orphan_is_matched_when_its_send_settles(
    redis: Redis, shared_redis: RedisServer
) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    store = RedisStore(redis)
    assert await ledger.claim("k") is None
    # The statuses overtake the send's answer (no tag: On-Premise): kept as orphans.
    await store.record_webhook(hook(status("wamid.o", "delivered"), status("wamid.o", "sent")))
    await store.record_webhook(hook(status("wamid.o", "failed", code=131026)))
    await store.record_webhook(hook(status("wamid.never", "read")))
    assert delivery(await campaign_status(CAMPAIGN, shared_redis.url))["delivered"] == 0
    assert "d" not in await entry(redis, "k")
    await ledger.settle("k", "sent", message_id="wamid.o")
    await ledger.flush()
    found = await entry(redis, "k")
    assert (found["s"], found["id"], found["d"], found["f"]) == (
        "sent",
        "wamid.o",
        "delivered",
        "131026",
    )
    assert await redis.hmget("d360:wamid:wamid.o", ["d", "f"]) == [None, None]
    # Later statuses find it by its id.
    await store.record_webhook(hook(status("wamid.o", "read")))
    assert delivery(await campaign_status(CAMPAIGN, shared_redis.url)) == {
        "delivered": 1,
        "read": 1,
        "undelivered": 1,
        "undelivered_codes": {"131026": 1},
        "unknown_settled": 0,
    }


async def test_an_unknown_send_is_settled_only_by_its_own_status(
    redis: Redis, shared_redis: RedisServer
) -> None:
    dead = RedisLedger(redis, CAMPAIGN, "ch")
    other = RedisLedger(redis, CAMPAIGN, "ch")
    store = RedisStore(redis)
    for key in ("lost", "silent"):
        assert await dead.claim(key) is None
        assert await other.claim(key) == "attempting"  # its worker died: in doubt
    tag = dead.callback_for("lost")
    assert tag == callback_tag(CAMPAIGN, "lost") and len(tag.encode()) <= 256
    assert "lost" not in tag.rpartition(":")[2]
    # Statuses of other messages, a tag of another campaign, a forged tag: nothing settled.
    await store.record_webhook(
        hook(
            status("wamid.x", "delivered"),
            status("wamid.y", "delivered", tag=callback_tag("elsewhere", "lost")),
            status("wamid.z", "delivered", tag=f"d360r:{CAMPAIGN}:{'a' * 24}"),
            status("wamid.w", "delivered", tag="d360r:bad campaign:zz"),
        )
    )
    found = await campaign_status(CAMPAIGN, shared_redis.url)
    assert (found["unknown"], found["unknown_settled"], found["delivered"]) == (2, 0, 0)
    # An untagged status of its message came first (an orphan), then one with its tag.
    await store.record_webhook(hook(status("wamid.lost", "read")))
    await store.record_webhook(hook(status("wamid.lost", "sent", tag=tag)))
    lost = await entry(redis, "lost")
    assert (lost["s"], lost["id"], lost["d"]) == ("unknown", "wamid.lost", "read")
    found = await campaign_status(CAMPAIGN, shared_redis.url)
    assert (found["unknown"], found["unknown_settled"]) == (2, 1)
    assert (found["delivered"], found["read"]) == (1, 1)
    assert found["channels"]["ch"]["unknown_settled"] == 1
    assert "d" not in await entry(redis, "silent")
    # The tag taught the key its id: a later status without one finds it.
    await store.record_webhook(hook(status("wamid.lost", "failed", code=131050)))
    assert (await entry(redis, "lost"))["f"] == "131050"
    # The worker was alive after all: its answer makes it sent, and the counts follow.
    await dead.settle("lost", "sent", message_id="wamid.lost")
    await dead.flush()
    found = await campaign_status(CAMPAIGN, shared_redis.url)
    assert (found["sent"], found["unknown"], found["unknown_settled"]) == (1, 1, 0)
    assert delivery(found) == {
        "delivered": 1,
        "read": 1,
        "undelivered": 1,
        "undelivered_codes": {"131050": 1},
        "unknown_settled": 0,
    }


async def test_a_retried_failed_send_keeps_its_delivery_facts(
    redis: Redis, shared_redis: RedisServer
) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    store = RedisStore(redis)
    assert await ledger.claim("k") is None
    await store.record_webhook(hook(status("wamid.f", "failed", tag=ledger.callback_for("k"))))
    await ledger.settle("k", "failed", code=131000)
    await ledger.flush()
    assert delivery(await campaign_status(CAMPAIGN, shared_redis.url))["undelivered"] == 0
    await sent(ledger, "k", "wamid.f2")
    found = await campaign_status(CAMPAIGN, shared_redis.url)
    assert (found["sent"], found["undelivered"], found["undelivered_codes"]) == (1, 1, {"none": 1})


# -- end to end: taskiq workers, the fake's webhooks, a receiver on RedisStore ---------------

KEYS = {"a": "a-SECRET-key-0123456789", "b": "b-SECRET-key-0123456789"}
PER_CHANNEL = 150
LOST_ANSWERS = 3  # processed by the fake (statuses go out), the answer lost: unknown
PLAN = WebhookPlan(
    fail_ratio=0.08,
    codes=(131026, 131049),
    undelivered_ratio=0.05,
    read_ratio=0.5,
    seed=7,
    shuffle=True,
    jitter=0.02,
    early_ratio=0.1,
    duplicate_ratio=0.1,
    max_batch=20,
    linger=0.01,
)


@asynccontextmanager
async def receiving(store: RedisStore) -> AsyncIterator[tuple[str, WebhookReceiver]]:
    receiver = WebhookReceiver(store=store)
    runner = web.AppRunner(receiver.app("/webhook"), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/webhook", receiver
    finally:
        await runner.cleanup()


async def test_campaign_status_reports_what_the_fake_delivered(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    names = list(KEYS)
    async with RedisStore(redis_server.url) as store, receiving(store) as (url, receiver):
        fake = TimedFake(
            api_keys=KEYS.values(),
            throughput=None,
            engage_all=True,
            webhook_url=url,
            webhooks=PLAN,
        )
        async with fake:
            fake.script(
                "POST", "/messages", *[FakeResponse(status=500, process=True)] * LOST_ANSWERS
            )
            with Workers(worker_env(redis_server.url, fake.url, KEYS), tmp_path) as workers:
                workers.start(2)
                summary = await asyncio.wait_for(
                    broadcast(
                        campaign(names, PER_CHANNEL),
                        broker=make_broker(redis_server.url),
                        campaign_id="e2e-delivery",
                        batch_size=40,
                        poll=0.2,
                        stall_timeout=60,
                    ),
                    120,
                )
            await asyncio.wait_for(fake.webhooks_idle(), 60)
            log, hooks = fake.delivery, fake.stats()["webhooks"]
            assert fake.duplicates() == {}
        found = await campaign_status("e2e-delivery", redis_server.url)
    total = PER_CHANNEL * len(names)
    assert (summary.sent, summary.unknown, summary.failed) == (
        total - LOST_ANSWERS,
        LOST_ANSWERS,
        0,
    )
    assert len(log) == total  # the fake processed every send, the lost answers too
    fates = log.counts()
    assert fates["failed"] and fates["sent"] and fates["read"] and fates["delivered"]
    assert delivery(found) == {
        "delivered": fates["delivered"] + fates["read"],
        "read": fates["read"],
        "undelivered": fates["failed"],
        "undelivered_codes": {str(code): n for code, n in log.failures().items()},
        "unknown_settled": LOST_ANSWERS,
    }
    # Per channel as well.
    per_channel: dict[str, Counter[str]] = {name: Counter() for name in names}
    for record in log.values():
        per_channel[names[channel_of(record.recipient_id)]][record.status] += 1
    for name, counted in per_channel.items():
        got = found["channels"][name]
        assert got.get("delivered", 0) == counted["delivered"] + counted["read"]
        assert (got.get("read", 0), got.get("undelivered", 0)) == (
            counted["read"],
            counted["failed"],
        )
    # Every status found its message (none left an orphan), and the webhooks were rough.
    with redis_server.client() as client:
        orphans = [
            key for key in client.scan_iter("d360:wamid:*", count=1000) if client.hexists(key, "d")
        ]
        # Every key expires with the campaign (the tags and the message ids too).
        base = "d360:campaign:e2e-delivery"
        ttls = [client.ttl(f"{base}:{name}") for name in ("ledger", "counts", "tags", "meta")]
        ttls.append(client.ttl(f"d360:wamid:{next(iter(log))}"))
    assert orphans == []
    assert all(0 < ttl <= 7 * 24 * 3600 for ttl in ttls), ttls
    assert not log.lost and hooks["gave_up"] == 0
    assert hooks["duplicates"] > 0 and hooks["early"] > 0
    assert receiver.stats.store_errors == 0
    # The CLI prints the same counts.
    env = {**os.environ, "D360_REDIS_URL": redis_server.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialog360_async", "campaign", "status", "e2e-delivery",
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert delivery(json.loads(out)) == delivery(found)
    print(
        f"\ndistributed e2e: {total} messages, {summary.unknown} unknown settled by their tag, "
        f"delivery {delivery(found)}; webhooks: {hooks['posts']} POSTs, {hooks['statuses']} "
        f"statuses, {hooks['duplicates']} duplicates, {hooks['early']} early"
    )
