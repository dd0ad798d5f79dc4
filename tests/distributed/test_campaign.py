"""A producer that crashes and is run again, a campaign watched from elsewhere, and no key in
any task or Redis record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialog360_async import Location, LocationMessage
from dialog360_async.distributed import broadcast, make_broker, wait_campaign

from ._harness import RedisServer, TimedFake, Workers, campaign, worker_env

KEYS = {"a": "a-SECRET-key-0123456789", "b": "b-SECRET-key-0123456789"}
CAMPAIGN = "reattach-1"


async def messages(crash_after: int | None = None) -> AsyncIterator[tuple[str, LocationMessage]]:
    where = Location(latitude=1.0, longitude=2.0)
    items = [*campaign(list(KEYS), 100)]
    items += [("nokey", LocationMessage(to=f"+1555{n:07d}", location=where)) for n in range(10)]
    for number, item in enumerate(items):
        if number == crash_after:
            raise RuntimeError("producer crashed")
        yield item


def everything(server: RedisServer) -> str:
    """Every key and value in Redis, as text."""
    parts: list[str] = []
    with server.client() as client:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            parts.append(key)
            if kind == "hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == "stream":
                parts.append(repr(client.xrange(key)))
            elif kind == "set":
                parts.append(repr(client.smembers(key)))
            elif kind == "string":
                parts.append(repr(client.get(key)))
    return "\n".join(parts)


async def test_a_crashed_producer_reattaches_and_nothing_is_sent_twice(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    broker = make_broker(redis_server.url)
    with pytest.raises(RuntimeError, match="producer crashed"):
        await broadcast(
            messages(crash_after=120), broker=broker, campaign_id=CAMPAIGN, batch_size=25
        )
    with redis_server.client() as client:
        tasks = client.xrange("dialog360")
    assert len(tasks) == 4  # two full batches per channel made it before the crash
    payloads = "".join(fields["data"] for _, fields in tasks)
    assert '"a"' in payloads and "location" in payloads  # channel names, wire-shape messages
    assert "SECRET" not in payloads

    # Run it again with the same id and input: the four batches are not enqueued again.
    resumed = await broadcast(
        messages(), broker=broker, campaign_id=CAMPAIGN, batch_size=25, wait=False
    )
    assert (resumed.messages, resumed.batches) == (210, 9)
    async with TimedFake(api_keys=KEYS.values(), throughput=None, engage_all=True) as fake:
        with Workers(worker_env(redis_server.url, fake.url, KEYS), tmp_path) as workers:
            workers.start(1)
            summary = await asyncio.wait_for(
                wait_campaign(CAMPAIGN, redis_server.url, poll=0.2, stall_timeout=30), 60
            )
    assert summary.finished
    assert (summary.sent, summary.failed, summary.unknown) == (200, 10, 0)
    assert "nokey" in summary.errors and "not configured" in summary.errors["nokey"]
    assert fake.duplicates() == {} and sum(fake.sends.values()) == 200
    assert "SECRET" not in everything(redis_server)
