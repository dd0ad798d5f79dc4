"""The worker side: one batch of one channel's messages through a BulkSender.

A task names its channel; the worker looks the key up in its own environment, so no key is
ever in a task, in Redis or in a log. Clients, connections and the channels' shared limiters
live as long as the worker process and serve every batch it runs.

A stopping worker (SIGTERM/SIGINT: taskiq stops asking the broker for batches) cancels its
batches: sends waiting for the rate end at once without a claim, sends in flight get
``shutdown_grace`` seconds to finish and otherwise end ``unknown``; the broker hands each
unfinished batch on, and the worker that runs it again sends only what was never sent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from .._bulk import BulkSender
from .._cloud import Dialog360Client
from .._converter import structure
from .._models import MESSAGE_KINDS, Message
from .._onprem import OnPremiseClient
from .._pool import SessionPool
from ._config import BrokerSettings, WorkerSettings
from ._keys import CAMPAIGN_TTL, CampaignKeys
from ._ledger import RedisLedger
from ._limiter import RedisRateLimiter
from ._lua import FINISH_BATCH
from ._redis import connect, retrying

__all__ = ["WorkerRuntime", "decode_item", "tune_gc"]

logger = logging.getLogger("dialog360_async.distributed")

_Client = Dialog360Client | OnPremiseClient

GC_THRESHOLD: Final = 10_000  # allocations between young collections (CPython's default: 700)


def tune_gc() -> None:
    """Collect, freeze what the process holds now, and collect the young generation less often.

    A batch arrives with its hundred messages decoded at once. At CPython's default threshold
    each batch set off several young collections, whose survivors (the batch, still in use)
    filled the old generation and so set off full collections over everything the process had
    imported: a worker spent about 13 % of its CPU collecting (``python -m
    benchmarks.distributed``; README "Performance"). Frozen objects are never scanned again
    (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)


def decode_item(item: Any) -> tuple[str, Message]:
    """``[key, wire message]`` from a task as ``(key, Message)``; raises on a bad shape."""
    key, wire = item
    if not isinstance(key, str) or not isinstance(wire, dict):
        raise ValueError("expected [key, message object]")
    kind = MESSAGE_KINDS.get(wire.get("type", ""))
    if kind is None:
        raise ValueError(f"unsupported message type {wire.get('type')!r}")
    return key, structure(wire, kind)


class WorkerRuntime:
    """What one worker process keeps between batches."""

    def __init__(self, broker_settings: BrokerSettings, settings: WorkerSettings | None = None):
        self._broker_settings = broker_settings
        self._settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._redis: Redis | None = None
        self._pool: SessionPool | None = None
        self._clients: dict[str, _Client] = {}
        self._limiters: dict[str, RedisRateLimiter] = {}
        self._batches: set[asyncio.Task[dict[str, int]]] = set()
        # Per (campaign, channel) being sent: its batches' ledgers share script calls.
        self._ledgers: dict[tuple[str, str], tuple[RedisLedger, int]] = {}
        self._stopped: asyncio.Future[None] | None = None
        self._finish: AsyncScript | None = None  # FINISH_BATCH, registered at the first batch
        self.stopping = False

    def patience(self) -> float:
        """Seconds to ride out a Redis outage: none once stopping (see ``_redis.Outage``)."""
        return 0.0 if self.stopping else self._broker_settings.outage

    def stop(self) -> None:
        """Stop sending: cancel every batch (see the module docs); later batches send nothing.

        Safe to call more than once, and from a ``finally`` (it only schedules).
        """
        if self.stopping:
            return
        self.stopping = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        for task in self._batches:
            task.cancel()

    async def startup(self) -> None:
        """Read the worker's settings, so that a misconfigured worker fails at once; then
        :func:`tune_gc` (the worker process is ours)."""
        settings = self._load()
        tune_gc()
        loop = type(asyncio.get_running_loop())
        logger.info(
            "worker %s serves channels %s (event loop: %s.%s)",
            self.name,
            ", ".join(settings.channels),
            loop.__module__,
            loop.__qualname__,
        )

    def _load(self) -> WorkerSettings:
        if self._settings is None:
            self._settings = WorkerSettings.from_env()
        return self._settings

    def _redis_client(self) -> Redis:
        if self._redis is None:
            self._redis = connect(self._broker_settings.redis_url)
        return self._redis

    def _client(self, channel: str, settings: WorkerSettings) -> _Client | None:
        found = self._clients.get(channel)
        key = settings.channels.get(channel)
        if found is not None or key is None:
            return found
        if self._pool is None:
            self._pool = SessionPool(limit=200)
        limiter = RedisRateLimiter(
            self._redis_client(),
            channel,
            settings.rate_of(channel),
            outage=self._broker_settings.outage,
        )
        self._limiters[channel] = limiter
        options: dict[str, Any] = {"rate_limit": limiter}
        if settings.base_url is not None:
            options["base_url"] = settings.base_url
        client: _Client = (
            self._pool.on_premise_client(key, **options)
            if settings.on_premise
            else self._pool.client(key, **options)
        )
        self._clients[channel] = client
        return client

    async def send_batch(
        self, campaign: str, channel: str, batch: str, items: list[Any]
    ) -> dict[str, int] | None:
        """Send one batch; return its counts per outcome, or None if the worker stopped first.

        A batch stopped part way is not finished: what it sent is in the ledger, and the rest
        is sent by whoever runs the batch again.
        """
        if self.stopping:
            return None
        # A task of its own, for stop() to cancel: its sends get their grace from the
        # BulkSender, and whatever else it waits for (Redis in an outage) ends at once.
        work = asyncio.create_task(self._run(campaign, channel, batch, items))
        self._batches.add(work)
        if self.stopping:  # stop() came while the task was being made
            work.cancel()
        try:
            await asyncio.wait((work, self._stop_signal()), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                # Past the grace (say, settling in a Redis outage) it is left behind, and
                # what it had in flight stays in doubt.
                await asyncio.wait((work,), timeout=self._broker_settings.shutdown_grace + 1.0)
        finally:
            self._batches.discard(work)
        if not work.done() or work.cancelled():
            logger.warning(
                "batch %s of campaign %s stopped with the worker; left for another worker",
                batch,
                campaign,
            )
            return None
        return work.result()

    async def _run(
        self, campaign: str, channel: str, batch: str, items: list[Any]
    ) -> dict[str, int]:
        settings = self._load()
        redis = self._redis_client()
        keys = CampaignKeys(campaign)
        decoded: list[tuple[str, Message]] = []
        bad: list[str] = []
        for item in items:
            try:
                decoded.append(decode_item(item))
            except Exception as exc:  # a malformed item fails alone
                logger.error("batch %s: malformed item: %s", batch, exc)
                if isinstance(item, list | tuple) and item and isinstance(item[0], str):
                    bad.append(item[0])
        client = self._client(channel, settings)
        owner = f"{self.name}/{batch}/{time.monotonic_ns()}"
        outage = self.patience
        # Records without sending take no permits: a ledger that does not pace.
        recorder = RedisLedger(redis, campaign, channel, owner=f"{owner}/r", outage=outage)
        halted = await retrying(
            lambda: redis.hget(keys.meta, f"halted:{channel}"),
            what="reading the campaign",
            outage=self._broker_settings.outage,
        )
        counts: dict[str, int] = {}
        if client is None or halted:
            reason = "halted by the spam limit" if halted else f"not configured on {self.name}"
            if not halted:
                await self._note(redis, keys, f"error:{channel}", f"channel {reason}")
            logger.error("batch %s: channel %s %s", batch, channel, reason)
            state = "cancelled" if halted else "failed"
            await self._record(recorder, (key for key, _ in decoded), state)
            counts[state] = len(decoded)
        else:
            ledger = self._ledger(redis, campaign, channel).fork(owner)
            try:
                counts = await self._send(client, ledger, decoded, settings.concurrency)
            finally:
                self._release(campaign, channel)
        if bad:
            await self._record(recorder, bad, "failed")
            counts["failed"] = counts.get("failed", 0) + len(bad)
        if counts.pop("halted", 0):
            await self._note(redis, keys, f"halted:{channel}", "spam limit (131048)")
        await recorder.close()
        finish = self._finish
        if finish is None:
            finish = self._finish = redis.register_script(FINISH_BATCH)
        campaign_keys = [keys.meta, keys.done, keys.ledger, keys.counts, keys.batches]
        finished = await retrying(
            lambda: finish(keys=campaign_keys, args=[batch, CAMPAIGN_TTL]),
            what="finishing a batch",
            outage=self._broker_settings.outage,
        )
        if int(finished) < 0:
            logger.error(
                "campaign %s vanished from Redis while batch %s ran (restarted without "
                "persistence, or flushed?): its later messages were not sent",
                campaign,
                batch,
            )
        logger.info("batch %s of campaign %s: %s", batch, campaign, counts)
        return counts

    def _ledger(self, redis: Redis, campaign: str, channel: str) -> RedisLedger:
        """The ledger the batches of ``channel`` in ``campaign`` fork theirs from."""
        found = self._ledgers.get((campaign, channel))
        if found is None:
            pace = self._limiters.get(channel)
            found = (RedisLedger(redis, campaign, channel, pace=pace, outage=self.patience), 0)
        self._ledgers[campaign, channel] = (found[0], found[1] + 1)
        return found[0]

    def _release(self, campaign: str, channel: str) -> None:
        ledger, users = self._ledgers.pop((campaign, channel))
        if users > 1:
            self._ledgers[campaign, channel] = (ledger, users - 1)

    async def _send(
        self,
        client: _Client,
        ledger: RedisLedger,
        decoded: list[tuple[str, Message]],
        concurrency: int,
    ) -> dict[str, int]:
        keys = {id(message): key for key, message in decoded}
        sender = BulkSender(
            concurrency=concurrency,
            rate_limit=None,
            journal=ledger,
            key=lambda message: keys[id(message)],
            grace=self._broker_settings.shutdown_grace,
        )
        summary = await sender.send_all((client, message) for _, message in decoded)
        counts = {
            status: getattr(summary, status)
            for status in ("sent", "failed", "unknown", "skipped", "cancelled")
            if getattr(summary, status)
        }
        if summary.halted:
            counts["halted"] = 1
        return counts

    def _stop_signal(self) -> asyncio.Future[None]:
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
            if self.stopping:
                self._stopped.set_result(None)
        return self._stopped

    async def _record(self, ledger: RedisLedger, keys: Iterable[str], state: Any) -> None:
        async def one(key: str) -> None:
            try:
                if await ledger.claim(key) is None:
                    await ledger.settle(key, state)
            except Exception as exc:
                logger.error("could not record %s as %s: %s", key, state, exc)

        # At once: the ledger takes the claims (then the outcomes) in one round trip.
        await asyncio.gather(*(one(key) for key in keys))

    async def _note(self, redis: Redis, keys: CampaignKeys, field: str, value: str) -> None:
        try:
            # Only into a campaign that still exists: never recreate a lost one.
            await redis.eval(
                "if redis.call('EXISTS', KEYS[1]) == 1 then "
                "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end",
                1,
                keys.meta,
                field,
                value,
            )
        except Exception as exc:
            logger.error("could not note %s: %s", field, exc)

    async def shutdown(self) -> None:
        """Stop, then close clients, connections and the limiters' background work."""
        self.stop()
        for limiter in self._limiters.values():
            await limiter.aclose()
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
        self._clients.clear()
        self._limiters.clear()
        self._pool = None
        self._redis = None
        self._finish = None
