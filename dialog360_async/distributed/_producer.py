"""The producer: stream ``(channel, message)`` pairs into per-channel batches on the broker.

Memory stays flat: at most one partial batch per channel is held, and no more than
``max_pending`` batches wait in Redis at once. Batch ids are derived from their content, so a
crashed producer run again with the same ``campaign_id`` and input skips what it enqueued
before; anything else it enqueues again is made safe by the ledger (sent keys are skipped).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from .._bulk import message_key
from .._converter import unstructure
from .._models import Message, check_message
from ..errors import ValidationError
from . import _lua
from ._broker import D360Broker
from ._campaign import CampaignSummary, read_status, watch
from ._errors import CampaignLostError, CampaignStalledError, RedisUnavailableError
from ._keys import CAMPAIGN_TTL, TASK_NAME, CampaignKeys, channel_name
from ._redis import connect, reach, retrying

__all__ = ["Entry", "broadcast", "new_campaign_id"]

Entry = tuple[str, Message] | tuple[str, Message, str]
"""``(channel_name, message)``, or ``(channel_name, message, key)`` with your own key."""

_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, ConnectionError)


def new_campaign_id() -> str:
    """A fresh campaign id: UTC time plus random letters, e.g. ``20250101T120000-1a2b3c4d``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class _Producer:
    def __init__(
        self,
        redis: Redis,
        broker: D360Broker,
        keys: CampaignKeys,
        max_pending: int,
        poll: float,
        stall_timeout: float,
    ) -> None:
        self.redis = redis
        self.broker = broker
        self.keys = keys
        self.max_pending = max_pending
        self.poll = poll
        self.stall_timeout = stall_timeout
        self.outage = broker.settings.outage
        self.register = redis.register_script(_lua.REGISTER_BATCH)
        self.serial: dict[str, int] = {}

    async def create(self) -> None:
        keys = self.keys

        async def call() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(keys.meta, "created", f"{time.time():.3f}")
                pipe.hdel(keys.meta, "input_done", "finished")  # a reattached run adds more
                await pipe.execute()

        await retrying(call, what="creating the campaign", outage=self.outage)

    async def enqueue(self, channel: str, items: list[list[Any]]) -> None:
        await self._room()
        number = self.serial[channel] = self.serial.get(channel, 0) + 1
        digest = hashlib.sha256("\n".join(item[0] for item in items).encode()).hexdigest()[:12]
        batch = f"{channel}:{number}:{digest}"
        keys = self.keys

        async def register() -> Any:
            return await self.register(keys=[keys.meta, keys.batches], args=[batch, len(items)])

        state = int(await retrying(register, what="registering a batch", outage=self.outage))
        if state == 2:
            return  # enqueued by an earlier run of this producer
        await self._kick(channel, batch, items)
        await retrying(
            lambda: self.redis.hset(keys.batches, batch, "kicked"),
            what="registering a batch",
            outage=self.outage,
        )

    async def _kick(self, channel: str, batch: str, items: list[list[Any]]) -> None:
        task = self.broker.find_task(TASK_NAME)
        if task is None:
            raise ValidationError("broker", "has no batch task: build it with make_broker()")
        deadline: float | None = None
        while True:
            try:
                await task.kiq(self.keys.id, channel, batch, items)
                return
            except Exception as exc:
                cause: BaseException | None = exc
                while cause is not None and not isinstance(cause, _TRANSIENT):
                    cause = cause.__cause__ or cause.__context__
                if cause is None:
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.outage
                if now >= deadline:
                    raise RedisUnavailableError(
                        f"Redis unreachable for {self.outage:g} s while enqueuing: {cause}"
                    ) from exc
                await asyncio.sleep(0.5)

    async def _room(self) -> None:
        waited = time.monotonic()
        while True:
            created, batches, done = await retrying(
                lambda: self.redis.hmget(self.keys.meta, "created", "batches", "batches_done"),
                what="reading status",
                outage=self.outage,
            )
            if created is None:
                raise CampaignLostError(
                    f"campaign {self.keys.id} vanished from Redis while enqueuing (restarted "
                    "without persistence, or flushed?): messages may have been sent; check "
                    "before running it again"
                )
            if int(batches or 0) - int(done or 0) < self.max_pending:
                return
            if time.monotonic() - waited > self.stall_timeout:
                raise CampaignStalledError(
                    f"campaign {self.keys.id}: no batch finished for {self.stall_timeout:g} s; "
                    "are workers running (taskiq worker dialog360_async.distributed:broker)?"
                )
            await asyncio.sleep(self.poll)

    async def input_done(self) -> None:
        keys = self.keys

        async def call() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.meta, "input_done", "1")
                for key in keys.all():
                    pipe.expire(key, CAMPAIGN_TTL)
                await pipe.execute()

        await retrying(call, what="finishing the input", outage=self.outage)

    async def finished(self) -> None:
        await retrying(
            lambda: self.redis.hsetnx(self.keys.meta, "finished", f"{time.time():.3f}"),
            what="finishing the campaign",
            outage=self.outage,
        )


async def _each(messages: Iterable[Entry] | AsyncIterable[Entry]) -> AsyncIterator[Entry]:
    if isinstance(messages, AsyncIterable):
        async for item in messages:
            yield item
    else:
        for item in messages:
            yield item


def _entry(item: Any, key: Callable[[Message], str]) -> tuple[str, list[Any]]:
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        raise ValidationError("messages", f"expected (channel, message[, key]), got {item!r}")
    channel, message = channel_name(item[0]), item[1]
    check_message(message)
    given = item[2] if len(item) == 3 else key(message)
    if not isinstance(given, str) or not given:
        raise ValidationError("key", f"must be a non-empty string, got {given!r}")
    return channel, [given, unstructure(message)]


async def broadcast(
    messages: Iterable[Entry] | AsyncIterable[Entry],
    *,
    broker: D360Broker,
    campaign_id: str | None = None,
    batch_size: int = 100,
    key: Callable[[Message], str] = message_key,
    max_pending: int = 64,
    wait: bool = True,
    poll: float = 0.5,
    stall_timeout: float = 600.0,
    on_progress: Callable[[CampaignSummary], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> CampaignSummary:
    """Send a campaign through the workers; return its summary (one outcome per message key).

    Args:
        messages: ``(channel_name, message)`` or ``(channel_name, message, key)`` items, from
            any iterable or async iterable, consumed lazily. Channel names are resolved to API
            keys by the workers (``D360_CHANNELS``): no key ever travels.
        broker: from :func:`make_broker` (or :func:`broker`); started and shut down here if it
            was not started.
        campaign_id: to resume a campaign whose producer crashed (same input); default new.
        batch_size: messages per task; a batch goes through one channel.
        key: a message's at-most-once key (default: recipient plus content hash); unique.
        max_pending: batches enqueued and not finished at once (back-pressure).
        wait: wait for the workers to finish (else return once everything is enqueued).
        poll: seconds between two progress reads.
        stall_timeout: give up waiting after this long without progress.
        on_progress: called with the summary after every read while waiting.
        on_start: called with the campaign id before the first message is enqueued.

    Raises:
        CampaignLostError: the campaign's state vanished from Redis (restart without
            persistence): nothing is re-enqueued, since what was sent cannot be known.
        CampaignStalledError: no progress for ``stall_timeout`` seconds.
        RedisUnavailableError: Redis does not answer at the start (nothing was enqueued), or
            stayed unreachable longer than the outage timeout.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ValidationError("max_pending", f"must be an integer >= 1, got {max_pending!r}")
    keys = CampaignKeys(campaign_id if campaign_id is not None else new_campaign_id())
    redis = connect(broker.settings.redis_url)
    started_here = False
    try:
        await reach(redis, broker.settings.redis_url)
        started_here = not broker.started
        if started_here:
            await broker.startup()
        producer = _Producer(redis, broker, keys, max_pending, poll, stall_timeout)
        await producer.create()
        if on_start is not None:
            on_start(keys.id)
        buffers: dict[str, list[list[Any]]] = {}
        async for item in _each(messages):
            channel, entry = _entry(item, key)
            buffer = buffers.setdefault(channel, [])
            buffer.append(entry)
            if len(buffer) >= batch_size:
                del buffers[channel]
                await producer.enqueue(channel, buffer)
        for channel, buffer in buffers.items():
            await producer.enqueue(channel, buffer)
        await producer.input_done()
        if not wait:
            status = await retrying(lambda: read_status(redis, keys.id), what="reading status")
            return CampaignSummary.from_status(status)
        summary = await watch(
            redis, keys.id, poll=poll, stall_timeout=stall_timeout, on_progress=on_progress
        )
        await producer.finished()
        status = await retrying(lambda: read_status(redis, keys.id), what="reading status")
        return CampaignSummary.from_status(status) if status["state"] == "finished" else summary
    finally:
        await redis.aclose()
        if started_here:
            await broker.shutdown()
