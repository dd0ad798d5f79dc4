"""Batched claims and outcomes: many keys per round trip, the rate permits taken in the same
script, none spent on a key the ledger refuses, none claimed before its permit is due."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from dialog360_async.distributed import RedisLedger, RedisRateLimiter
from dialog360_async.distributed._batching import Coalescer

CAMPAIGN = "batched-test"
LEDGER = f"d360:campaign:{CAMPAIGN}:ledger"


def counting(ledger: RedisLedger, name: str) -> list[int]:
    """Count the script calls (round trips) of ``ledger.<name>``, and their sizes."""
    script, sizes = getattr(ledger, name), []

    async def call(**kwargs: Any) -> object:
        sizes.append(len(kwargs["args"]))
        return await script(**kwargs)

    setattr(ledger, name, call)
    return sizes


async def test_claims_and_outcomes_at_once_take_one_round_trip_each(redis: Redis) -> None:
    pace = RedisRateLimiter(redis, "fast", 1e6)
    ledger = RedisLedger(redis, CAMPAIGN, "fast", pace=pace)
    calls = counting(ledger, "_script")
    keys = [f"k{n}" for n in range(60)]
    assert await asyncio.gather(*(ledger.claim(key) for key in keys)) == [None] * 60
    assert len(calls) == 1
    await asyncio.gather(*(ledger.settle(key, "sent", message_id=f"w.{key}") for key in keys))
    await ledger.flush()
    assert len(calls) == 2
    entries = await redis.hgetall(LEDGER)
    assert {json.loads(entries[key])["s"] for key in keys} == {"sent"}
    counts = await redis.hgetall(f"d360:campaign:{CAMPAIGN}:counts")
    assert (counts["sent"], counts["sent:fast"], counts["attempting"]) == ("60", "60", "0")
    assert await redis.hget("d360:wamid:w.k7", "k") == f"{CAMPAIGN}:k7"


async def test_outcomes_and_claims_asked_for_together_share_one_round_trip(redis: Redis) -> None:
    # A worker settles some messages while it claims the next ones: one script call for both,
    # the outcomes first, so a key that failed can be claimed again in the same call.
    pace = RedisRateLimiter(redis, "mixed", 1e6)
    ledger = RedisLedger(redis, CAMPAIGN, "mixed", pace=pace)
    first = [f"m{n}" for n in range(20)]
    assert await asyncio.gather(*(ledger.claim(key) for key in first)) == [None] * 20
    calls = counting(ledger, "_script")
    settles = [ledger.settle(key, "sent", message_id=f"w.{key}") for key in first[1:]]
    retry, new = ledger.claim("m0"), [ledger.claim(f"n{n}") for n in range(20)]
    found = await asyncio.gather(ledger.settle("m0", "failed"), *settles, retry, *new)
    assert len(calls) == 1
    assert found == [None] * 20 + [None] + [None] * 20  # m0 claimed again after its failure
    entries = await redis.hgetall(LEDGER)
    assert {json.loads(entries[key])["s"] for key in first[1:]} == {"sent"}
    assert {json.loads(entries[f"n{n}"])["s"] for n in range(20)} == {"attempting"}
    assert json.loads(entries["m0"])["s"] == "attempting"
    counts = await redis.hgetall(f"d360:campaign:{CAMPAIGN}:counts")
    assert (counts["sent:mixed"], counts["attempting:mixed"]) == ("19", "21")
    assert counts.get("failed:mixed", "0") == "0"


async def test_a_taken_over_batch_spends_no_permit_on_what_was_sent(redis: Redis) -> None:
    dead = RedisLedger(redis, CAMPAIGN, "slow")
    sent = [f"s{n}" for n in range(30)]
    for key in sent:
        assert await dead.claim(key) is None
        await dead.settle(key, "sent", message_id=f"w.{key}")
    await dead.flush()
    pace = RedisRateLimiter(redis, "slow", 10.0, burst=1)
    taker = RedisLedger(redis, CAMPAIGN, "slow", pace=pace)
    before = time.time()
    found = await asyncio.gather(*(taker.claim(key) for key in [*sent, "new"]))
    assert found == ["sent"] * 30 + [None]
    # One permit taken (for "new"): the bucket's next slot is one interval (0.1 s) away.
    tat = float(await redis.hget("d360:bucket:slow", "tat") or 0)
    assert tat - before <= 0.1 + 0.05, tat - before


async def test_no_claim_is_held_while_its_permit_is_not_due(redis: Redis) -> None:
    pace = RedisRateLimiter(redis, "paced", 20.0, burst=1)
    seen: list[tuple[float, list[str | None]]] = []
    keys = ["p0", "p1", "p2"]

    async def sleep(seconds: float) -> None:
        # While a claim waits for its permit, none but the claims already due are made.
        held = await redis.hmget(LEDGER, keys)
        seen.append((seconds, [None if raw is None else json.loads(raw)["s"] for raw in held]))
        await asyncio.sleep(seconds)

    ledger = RedisLedger(redis, CAMPAIGN, "paced", pace=pace, sleep=sleep)
    started = time.monotonic()
    assert await asyncio.gather(*(ledger.claim(key) for key in keys)) == [None] * 3
    elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < 0.5, elapsed  # three permits at 20/s: the last 0.1 s after the first
    assert seen and all(0 < wait <= 0.06 for wait, _ in seen), seen
    for _, states in seen:
        assert states.count("attempting") < 3  # never all claimed before all were due
    assert seen[0][1] == ["attempting", None, None]


async def test_items_put_without_a_future_learn_how_their_call_ended() -> None:
    # Outcomes go with no future each: the coalescer tells each one how its call ended,
    # succeeded, failed or stopped (in flight or still queued), and no other way.
    gate, fail = asyncio.Event(), [False]
    calls: list[list[str]] = []

    async def call(items: list[str]) -> list[str]:
        calls.append(items)
        await gate.wait()
        if fail[0]:
            raise ConnectionError("reset")
        return [f"r-{item}" for item in items]

    coalescer: Coalescer[str, str] = Coalescer(call, 2)
    ended: dict[str, BaseException | None] = {}

    def done(item: str, error: BaseException | None) -> None:
        assert item not in ended  # once each
        ended[item] = error

    claim = coalescer.post("c1")
    coalescer.put("s1", done)
    coalescer.put("s2", done)  # over the limit of 2: the next call
    await asyncio.sleep(0)
    assert calls == [["c1", "s1"]] and not ended
    gate.set()
    assert await claim == "r-c1"
    await asyncio.sleep(0)
    assert calls[1] == ["s2"] and ended == {"s1": None, "s2": None}

    fail[0] = True
    coalescer.put("s3", done)
    refused = coalescer.post("c2")
    with pytest.raises(ConnectionError):
        await refused
    assert isinstance(ended.pop("s3"), ConnectionError)

    gate.clear()
    coalescer.put("s4", done)
    await asyncio.sleep(0)  # in flight
    coalescer.put("s5", done)
    coalescer.put("s6", done)
    coalescer.put("s7", done)  # queued behind it
    await coalescer.aclose()
    assert set(ended) == {"s1", "s2", "s4", "s5", "s6", "s7"}
    assert all(isinstance(ended[i], asyncio.CancelledError) for i in ("s4", "s5", "s6", "s7"))
