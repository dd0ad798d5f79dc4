"""Flat memory: the sender's peak allocation does not grow with the number of messages.
(The 1,000,000-message RSS figure belongs to benchmarks/.)"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage, SentMessage

SENT = SentMessage(message_id="wamid.stub")


class NoNetworkClient(Dialog360Client):
    """Goes through the real sender; only the HTTP exchange is replaced."""

    async def _deliver(self, message: Any, retry: Any = None, **options: Any) -> SentMessage:
        await asyncio.sleep(0)
        return SENT


def generate(count: int) -> Iterator[LocationMessage]:
    where = Location(latitude=1, longitude=2)
    for n in range(count):
        yield LocationMessage(to=f"+1650{n:07d}", location=where)


async def peak_for(count: int) -> int:
    client = NoNetworkClient("k")
    sender = BulkSender(client, concurrency=32, rate_limit=None)
    gc.collect()
    tracemalloc.start()
    try:
        summary = await sender.send_all(generate(count))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.sent == count
    return peak


async def test_peak_memory_does_not_grow_with_input_size() -> None:
    small = await peak_for(20_000)
    large = await peak_for(200_000)
    print(f"\npeak traced memory: 20k -> {small / 1e6:.2f} MB, 200k -> {large / 1e6:.2f} MB")
    # 10x the messages: a per-message leak of even 20 bytes would add 3.6 MB.
    assert large < small * 1.5 + 1_000_000
