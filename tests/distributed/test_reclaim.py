"""A worker's broker looks for silent workers' batches once per tenth of the idle timeout, not
before every fetch, and still takes a silent batch over."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from dialog360_async.distributed import make_broker
from dialog360_async.distributed._broker import GROUP

from ._harness import RedisServer


def calls(server: RedisServer, command: str) -> int:
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_fetching_batches_back_to_back_looks_for_silent_ones_once(
    redis_server: RedisServer,
) -> None:
    broker = make_broker(redis_server.url, queue="back-to-back", idle_timeout=30)
    await broker.startup()
    conn = Redis(connection_pool=broker.connection_pool)
    try:
        for n in range(20):
            await conn.xadd("back-to-back", {"data": f"batch {n}".encode()})
        before = calls(redis_server, "xautoclaim")
        got = [await asyncio.wait_for(broker._next(conn), 5) for _ in range(20)]
        looked = calls(redis_server, "xautoclaim") - before
    finally:
        await conn.aclose()
        await broker.shutdown()
    assert [data for _, data in got] == [f"batch {n}".encode() for n in range(20)]
    assert looked == 1  # was 20: one xautoclaim before every xreadgroup


async def test_a_silent_workers_batch_is_still_taken_over(redis_server: RedisServer) -> None:
    broker = make_broker(redis_server.url, queue="silent", idle_timeout=0.3)
    await broker.startup()
    conn = Redis(connection_pool=broker.connection_pool)
    try:
        await conn.xadd("silent", {"data": b"first"})
        first, data = await asyncio.wait_for(broker._next(conn), 5)
        assert data == b"first"
        await conn.xack("silent", GROUP, first)  # done with it, as listen()'s ack would be
        # Another worker reads the next batch and goes silent: never acknowledges it.
        entry = await conn.xadd("silent", {"data": b"orphaned"})
        read = await conn.xreadgroup(GROUP, "dead-worker", {"silent": ">"}, count=1)
        assert read[0][1][0][0] == entry
        taken_entry, taken = await asyncio.wait_for(broker._next(conn), 5)
    finally:
        await conn.aclose()
        await broker.shutdown()
    assert (taken_entry, taken) == (entry.decode(), b"orphaned")
