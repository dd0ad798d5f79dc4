"""RedisLedger: at most one send per key, whoever claims it and whatever crashes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage
from dialog360_async.distributed import (
    CampaignLostError,
    RedisLedger,
    WorkerSettings,
    campaign_status,
)
from dialog360_async.distributed._config import parse_channels
from dialog360_async.errors import ValidationError
from dialog360_async.testing import FakeDialog360

from ._harness import RedisServer

CAMPAIGN = "ledger-test"


async def entry(redis: Redis, key: str) -> dict[str, object]:
    raw = await redis.hget(f"d360:campaign:{CAMPAIGN}:ledger", key)
    assert raw is not None
    found: dict[str, object] = json.loads(raw)
    return found


async def test_a_claim_is_exclusive_and_its_owner_settles_it(redis: Redis) -> None:
    first = RedisLedger(redis, CAMPAIGN, "ch")
    second = RedisLedger(redis, CAMPAIGN, "ch")
    assert await first.claim("k1") is None
    assert (await entry(redis, "k1"))["s"] == "attempting"
    # Another worker (a redelivered batch) finds it claimed: in doubt, never resent.
    assert await second.claim("k1") == "attempting"
    assert (await entry(redis, "k1"))["s"] == "unknown"
    assert await second.claim("k1") == "unknown"
    # The first worker was alive after all: its outcome is the truth.
    await first.settle("k1", "sent", message_id="wamid.1")
    await first.flush()
    found = await entry(redis, "k1")
    assert (found["s"], found["c"], found["id"]) == ("sent", "ch", "wamid.1")
    assert await second.claim("k1") == "sent"
    await second.settle("k1", "failed")  # not its claim: ignored
    await second.flush()
    assert (await entry(redis, "k1"))["s"] == "sent"


async def test_status_counts_per_state_and_channel(redis: Redis, shared_redis: RedisServer) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    for key, state in (("a", "sent"), ("b", "sent"), ("c", "failed")):
        assert await ledger.claim(key) is None
        await ledger.settle(key, state)
    assert await ledger.claim("d") is None
    status = await campaign_status(CAMPAIGN, shared_redis.url)
    assert (status["sent"], status["failed"], status["in_flight"]) == (2, 1, 1)
    assert status["channels"] == {"ch": {"sent": 2, "failed": 1, "attempting": 1}}
    assert status["state"] == "running"
    missing = await campaign_status("no-such-campaign", shared_redis.url)
    assert missing["state"] == "missing"


async def test_failed_and_cancelled_free_the_key(redis: Redis) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    for state in ("failed", "cancelled"):
        assert await ledger.claim("k2") is None
        await ledger.settle("k2", state)
    assert await ledger.claim("k2") is None
    await ledger.settle("k2", "sent")
    await ledger.flush()
    counts = await redis.hgetall(f"d360:campaign:{CAMPAIGN}:counts")
    assert {k: int(v) for k, v in counts.items() if int(v)} == {"sent": 1, "sent:ch": 1}


async def test_a_settle_does_not_hold_the_sender_and_flush_waits_for_it(redis: Redis) -> None:
    # The sender's slot moves on at once; flush() (and close()) waits for the round trip.
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    assert await ledger.claim("k5") is None
    script, gate = ledger._script, asyncio.Event()

    async def slow(**kwargs: Any) -> object:
        await gate.wait()
        return await script(**kwargs)

    ledger._script = slow  # type: ignore[assignment]
    await asyncio.wait_for(ledger.settle("k5", "sent", message_id="wamid.5"), 1)
    flushed = asyncio.create_task(ledger.flush())
    await asyncio.sleep(0.05)
    assert not flushed.done() and (await entry(redis, "k5"))["s"] == "attempting"
    gate.set()
    await asyncio.wait_for(flushed, 5)
    assert (await entry(redis, "k5"))["s"] == "sent"


async def test_flush_waits_for_the_outcomes_settled_before_it_not_for_later_ones(
    redis: Redis,
) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    assert await ledger.claim("k7") is None and await ledger.claim("k8") is None
    script, gates = ledger._script, [asyncio.Event(), asyncio.Event()]

    async def gated(**kwargs: Any) -> object:
        await gates.pop(0).wait()
        return await script(**kwargs)

    first, second = gates
    ledger._script = gated  # type: ignore[assignment]
    await ledger.settle("k7", "sent", message_id="wamid.7")
    flushed = asyncio.create_task(ledger.flush())
    await asyncio.sleep(0)
    await ledger.settle("k8", "sent", message_id="wamid.8")  # after the flush began
    await asyncio.sleep(0.05)
    assert not flushed.done()
    first.set()
    await asyncio.wait_for(flushed, 5)  # k8's call is still held
    assert (await entry(redis, "k7"))["s"] == "sent"
    assert (await entry(redis, "k8"))["s"] == "attempting"
    again = asyncio.create_task(ledger.flush())
    await asyncio.sleep(0.05)
    assert not again.done()
    second.set()
    await asyncio.wait_for(again, 5)
    assert (await entry(redis, "k8"))["s"] == "sent"


async def test_a_settle_whose_call_failed_is_retried_by_close(redis: Redis) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch", outage=0)
    assert await ledger.claim("k6") is None
    script = ledger._script
    calls = 0

    async def fails_once(**kwargs: Any) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset")
        return await script(**kwargs)

    ledger._script = fails_once  # type: ignore[assignment]
    await ledger.settle("k6", "sent", message_id="wamid.6")
    await ledger.flush()
    assert (await entry(redis, "k6"))["s"] == "attempting"  # failed: kept for close()
    await ledger.close()
    assert (await entry(redis, "k6"))["s"] == "sent"


async def test_keys_and_ids_of_any_text_cross_in_one_group(redis: Redis) -> None:
    # A group of claims (and of outcomes) travels as one JSON argument: quotes, backslashes,
    # slashes, separators and non-ASCII text come back as they went, each to its own entry.
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    keys = ['q"uote', "back\\slash", "a/b", "\u00e9t\u00e9 \U0001f4ac", "[1, 2]", "{}", "x\x1fy"]
    assert await asyncio.gather(*(ledger.claim(key) for key in keys)) == [None] * len(keys)
    ids = {key: f'wamid.{n}/"{key}' for n, key in enumerate(keys)}
    await asyncio.gather(*(ledger.settle(key, "sent", message_id=ids[key]) for key in keys))
    await ledger.flush()
    for key in keys:
        found = await entry(redis, key)
        assert (found["s"], found["id"]) == ("sent", ids[key])
    assert await asyncio.gather(*(ledger.claim(key) for key in keys)) == ["sent"] * len(keys)


async def test_a_retried_claim_is_still_ours(redis: Redis) -> None:
    # A claim whose reply was lost is retried with the same owner token: it must go ahead.
    ledger = RedisLedger(redis, CAMPAIGN, "ch")
    meta = f"d360:campaign:{CAMPAIGN}"
    head = ["ch", "1.0", 60, f"{CAMPAIGN}:", "d360:wamid:", "", "", "", "", "[]"]
    keys = [f"{meta}:ledger", f"{meta}:counts", f"{meta}:meta", f"{meta}:tags"]

    async def claim(token: str) -> list[str]:
        args = [*head, json.dumps([["k3", token, "digest", False]])]
        verdicts: list[str] = json.loads(await ledger._script(keys=keys, args=args))
        return verdicts

    assert await claim("token-1") == ["", ""]  # claimed; no bucket, so no rate
    assert await claim("token-1") == ["", ""]
    assert await claim("token-2") == ["attempting", ""]


async def test_a_vanished_campaign_refuses_claims(redis: Redis) -> None:
    await redis.delete(f"d360:campaign:{CAMPAIGN}:meta")
    with pytest.raises(CampaignLostError, match="vanished"):
        await RedisLedger(redis, CAMPAIGN, "ch").claim("k4")


async def test_bulk_sender_with_the_ledger_never_sends_twice(redis: Redis) -> None:
    where = Location(latitude=1.0, longitude=2.0)
    messages = [LocationMessage(to=f"+1555{n:07d}", location=where) for n in range(30)]
    async with FakeDialog360(throughput=None) as fake:
        async with Dialog360Client("k", base_url=fake.url) as api:
            first = await BulkSender(api, journal=RedisLedger(redis, CAMPAIGN, "ch")).send_all(
                messages[:20]
            )
            again = await BulkSender(api, journal=RedisLedger(redis, CAMPAIGN, "ch")).send_all(
                messages
            )
    assert (first.sent, again.skipped, again.sent) == (20, 20, 10)
    assert fake.duplicates() == {} and sum(fake.sends.values()) == 30


def test_channels_come_from_the_environment_and_keys_never_show(tmp_path: Path) -> None:
    secret_file = tmp_path / "channels"
    secret_file.write_text("# one per line\nthird=key-three-SECRET\n")
    settings = WorkerSettings.from_env(
        {
            "D360_CHANNELS": "first=key-one-SECRET, second=key-two-SECRET",
            "D360_CHANNELS_FILE": str(secret_file),
            "D360_CHANNEL_RATES": "second=250",
            "D360_BASE_URL": "http://127.0.0.1:1",
        }
    )
    assert list(settings.channels) == ["first", "second", "third"]
    assert settings.channels["third"].reveal() == "key-three-SECRET"
    assert (settings.rate_of("first"), settings.rate_of("second")) == (80.0, 250.0)
    assert "SECRET" not in repr(settings)
    with pytest.raises(ValidationError) as caught:
        parse_channels("first=key-one-SECRET,key-two-SECRET")
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ValidationError, match="no channel configured"):
        WorkerSettings.from_env({})


async def test_a_claim_cut_short_by_a_stop_is_freed_not_left_in_doubt(redis: Redis) -> None:
    ledger = RedisLedger(redis, CAMPAIGN, "ch", owner="stopping")
    script = ledger._script
    heard = asyncio.Event()

    async def made_but_never_heard(**kwargs: Any) -> object:
        reply = await script(**kwargs)  # the claim reaches Redis...
        if heard.is_set():
            return reply  # (close() frees it)
        heard.set()
        await asyncio.Event().wait()  # ...and the worker stops before its answer arrives
        raise AssertionError("unreachable")

    ledger._script = made_but_never_heard  # type: ignore[assignment]
    claim = asyncio.create_task(ledger.claim("cut-1"))
    await heard.wait()
    assert (await entry(redis, "cut-1"))["s"] == "attempting"
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claim
    await ledger.close()
    assert (await entry(redis, "cut-1"))["s"] == "cancelled"  # free for the next worker
    assert await RedisLedger(redis, CAMPAIGN, "ch").claim("cut-1") is None
    counts = await redis.hgetall(f"d360:campaign:{CAMPAIGN}:counts")
    assert (counts.get("attempting"), counts.get("cancelled"), counts.get("unknown")) == (
        "1", "0", None
    )  # fmt: skip
