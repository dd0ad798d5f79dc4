"""The taskiq broker: taskiq-redis's stream broker, made to hand a dead worker's batches on.

taskiq-redis's ``RedisStreamBroker`` leaves a message unacknowledged until its task is done,
but reclaims idle messages only while new ones keep arriving, behind a lock that a killed
worker can hold forever, and it reads up to 100 messages at a time into one worker. This one
reads one message per free slot (``worker_batches`` per process), reclaims idle messages on
every poll with ``XAUTOCLAIM`` (atomic, no lock), keeps the messages it is working on from
looking idle by touching them, deletes messages once acknowledged, and rides out a Redis
restart. A batch delivered twice is safe: the ledger lets each message be sent at most once.

A batch is acknowledged by its task, once finished. When the worker stops (taskiq closes
``listen()`` on SIGTERM/SIGINT), its batches wind down (see ``_worker``) and each unfinished one
is put back on the stream as a new message for the other workers; if Redis cannot take it, it
stays pending and is taken over once idle.

taskiq's worker catches those signals with ``signal.signal``: a Python handler that sets its
shutdown event. uvloop wakes up for such handlers; the standard loop does not, and sleeps on in
``select()`` until some socket or timer is due (with sends in flight: until they are answered,
past the grace). So a worker's broker delivers taskiq's handlers through its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any, NoReturn

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from taskiq import AckableMessage, Context, TaskiqDepends, TaskiqEvents, TaskiqState
from taskiq.abc.serializer import TaskiqSerializer
from taskiq.exceptions import NoResultError
from taskiq_redis import RedisStreamBroker

from .._json import dumps, loads
from . import _lua
from ._config import BrokerSettings
from ._errors import RedisUnavailableError
from ._keys import TASK_NAME
from ._redis import check_url, retrying, text
from ._worker import WorkerRuntime

__all__ = ["D360Broker", "broker", "make_broker"]

logger = logging.getLogger("dialog360_async.distributed")

GROUP = "dialog360"
# A message whose task keeps killing its worker must not go round forever.
MAX_DELIVERIES = 5
_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, ConnectionError)


class _Serializer(TaskiqSerializer):
    def dumpb(self, value: Any) -> bytes:
        return dumps(value)

    def loadb(self, value: bytes) -> Any:
        return loads(value)


class D360Broker(RedisStreamBroker):
    """A Redis stream broker for broadcasts; build it with :func:`make_broker`.

    Args:
        settings: where Redis is, the stream name, reclaim and outage timeouts.
    """

    def __init__(self, settings: BrokerSettings) -> None:
        super().__init__(
            check_url(settings.redis_url),
            queue_name=settings.queue,
            consumer_group_name=GROUP,
            consumer_name=f"{uuid.uuid4().hex[:12]}",
            consumer_id="0",  # messages are deleted once acknowledged: none is ever skipped
            idle_timeout=max(1, int(settings.idle_timeout * 1000)),
            xread_block=1000,
            xread_count=1,
            socket_connect_timeout=5,  # a host that does not answer fails as one that refuses
        )
        self.settings = settings
        self.started = False
        self.runtime = WorkerRuntime(settings)
        self._held: set[str] = set()
        self._slots: asyncio.Semaphore | None = None
        self._beat: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._signals: dict[int, Callable[[int, Any], Any]] = {}
        self._acks: Redis | None = None
        self._ack: AsyncScript | None = None
        self._reclaim_due = float("-inf")  # monotonic time of the next look for silent batches
        # The project's JSON (orjson with the `speed` extra) for the tasks, not taskiq's stdlib
        # one: a batch's hundred messages are most of what a worker decodes per batch.
        self.with_serializer(_Serializer())

    async def startup(self) -> None:
        """Start the broker (creates the stream and its consumer group if missing)."""
        if self.is_worker_process:
            self._signals_through_loop()
        await super().startup()
        self.started = True

    async def shutdown(self) -> None:
        """Stop the worker's batches (if any), hand them on, and close the connections."""
        self.started = False
        if self.is_worker_process:
            self.runtime.stop()
        try:
            if self._running:
                await asyncio.wait(list(self._running), timeout=self.settings.shutdown_grace + 2)
            if self._beat is not None:
                self._beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._beat
                self._beat = None
            if self._acks is not None:
                await self._acks.aclose()
                self._acks, self._ack = None, None
            await super().shutdown()
        finally:
            self._signals_restored()

    def _signals_through_loop(self) -> None:
        """Run taskiq's signal handlers as loop callbacks: the signal wakes any loop."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread's handlers
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            handler = signal.getsignal(signum)
            if signum in self._signals or not callable(handler):
                continue
            if not getattr(handler, "__module__", "").startswith("taskiq."):
                continue  # someone else's handler: theirs to deliver
            try:
                loop.add_signal_handler(signum, handler, signum, None)
            except NotImplementedError:  # a loop without signal support (Windows)
                return
            self._signals[signum] = handler

    def _signals_restored(self) -> None:
        loop = asyncio.get_running_loop()
        for signum, handler in self._signals.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)
        self._signals.clear()

    async def _run_batch(
        self, campaign: str, channel: str, batch: str, items: list[Any], context: Context
    ) -> dict[str, int]:
        """The batch task: send, then acknowledge; hand the batch on if the worker stopped."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            try:
                counts = await self.runtime.send_batch(campaign, channel, batch, items)
            except Exception:
                await context.ack()  # a batch that fails is not run again (it would fail again)
                raise
            if counts is None:
                await self._hand_on(context, batch)
            await context.ack()
            return counts
        finally:
            if task is not None:
                self._running.discard(task)

    async def _hand_on(self, context: Context, batch: str) -> NoReturn:
        try:
            await context.requeue()  # a new message, for any worker; raises NoResultError
        except NoResultError:
            await context.ack()
            raise
        except Exception as exc:
            logger.warning(
                "could not hand batch %s on (%s): another worker takes it over once idle",
                batch,
                exc,
            )
        raise NoResultError  # no result: the batch is not finished

    # -- worker side ------------------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield one message per free slot: new ones, or ones a dead worker left idle."""
        self._slots = asyncio.Semaphore(self.settings.worker_batches)
        conn = Redis(connection_pool=self.connection_pool)
        if self._beat is None:  # until shutdown(): batches winding down stay ours
            self._beat = asyncio.create_task(self._keep_alive())
        try:
            while True:
                await self._slots.acquire()
                try:
                    entry, data = await self._next(conn)
                except BaseException:
                    self._slots.release()
                    raise
                self._held.add(entry)
                yield AckableMessage(data=data, ack=self._acker(entry))
        finally:
            # taskiq asks for no more batches only when the worker stops (a signal, or an
            # error): stop sending now rather than after every batch has run to its end.
            self.runtime.stop()
            await conn.aclose()

    async def _next(self, conn: Redis) -> tuple[str, bytes]:
        stream, idle_ms = self.queue_name, self.idle_timeout
        outage_since: float | None = None
        while True:
            try:
                # A silent worker's batch is taken over only after idle_timeout, so looking for
                # one every tenth of that is soon enough; a fetch then costs one round trip,
                # not two (the per-batch work was ~1.5 ms of a worker's CPU).
                now = time.monotonic()
                if now >= self._reclaim_due:
                    reclaimed = await self._reclaim(conn, stream, idle_ms)
                    if reclaimed is not None:
                        return reclaimed  # there may be more: the next fetch looks again
                    self._reclaim_due = now + idle_ms / 10_000
                got: Any = await conn.xreadgroup(
                    GROUP, self.consumer_name, {stream: ">"}, count=1, block=self.block
                )
                outage_since = None
                for _, entries in got or ():
                    for entry, fields in entries:
                        data: bytes = fields[b"data"]
                        return text(entry), data
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream is gone (Redis restarted without its data): start it again.
                logger.warning("stream %s or its group vanished; recreating it", stream)
                await self._declare_consumer_group()
            except _TRANSIENT as exc:
                now = time.monotonic()
                if outage_since is None:
                    outage_since = now
                    logger.warning("Redis unreachable (%s); reconnecting", exc)
                if now - outage_since > self.settings.outage:
                    raise RedisUnavailableError(
                        f"Redis unreachable for {self.settings.outage:g} s: {exc}"
                    ) from exc
                await asyncio.sleep(0.5)

    async def _reclaim(self, conn: Redis, stream: str, idle_ms: int) -> tuple[str, bytes] | None:
        claimed = await conn.xautoclaim(
            stream, GROUP, self.consumer_name, min_idle_time=idle_ms, start_id="0-0", count=1
        )
        for entry, fields in claimed[1]:
            if entry is None or not fields:
                continue
            entry = text(entry)
            if entry in self._held:
                continue  # ours, only touched late: we are still working on it
            pending = await conn.xpending_range(stream, GROUP, entry, entry, 1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            if deliveries > MAX_DELIVERIES:
                logger.error("dropping message %s: delivered %d times", entry, deliveries)
                await self._delete(entry)
                continue
            logger.warning("taking over message %s from a worker that went silent", entry)
            return entry, fields[b"data"]
        return None

    async def _keep_alive(self) -> None:
        async with Redis(connection_pool=self.connection_pool) as conn:
            touch = conn.register_script(_lua.TOUCH)
            interval = max(0.2, self.idle_timeout / 3000)
            while True:
                await asyncio.sleep(interval)
                held = list(self._held)
                if not held:
                    continue
                try:
                    await touch(keys=[self.queue_name], args=[GROUP, self.consumer_name, *held])
                except Exception as exc:  # the next beat tries again; reclaim is the fallback
                    logger.debug("could not touch held messages: %s", exc)

    async def _delete(self, entry: str) -> None:
        # One client and script for every ack: making them per batch cost as much as the
        # round trip.
        if self._ack is None:
            self._acks = Redis(connection_pool=self.connection_pool)
            self._ack = self._acks.register_script(_lua.ACK)
        await self._ack(keys=[self.queue_name], args=[GROUP, entry])

    def _acker(self, entry: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            self._held.discard(entry)
            if self._slots is not None:
                self._slots.release()
            try:
                await retrying(
                    lambda: self._delete(entry),
                    what="acknowledging a batch",
                    outage=self.runtime.patience,
                )
            except Exception as exc:  # it will be delivered again; the ledger makes that safe
                logger.error("could not acknowledge message %s: %s", entry, exc)

        return ack


def make_broker(
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    idle_timeout: float | None = None,
    worker_batches: int | None = None,
    outage: float | None = None,
    shutdown_grace: float | None = None,
) -> D360Broker:
    """A broker with the batch task registered; unset arguments come from the environment.

    Args:
        redis_url: the shared Redis (``D360_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).
        queue: the stream tasks travel on (``D360_QUEUE``, default ``dialog360``).
        idle_timeout: seconds a batch of a silent (dead) worker waits before another worker
            takes it over (``D360_IDLE_TIMEOUT``, default 30).
        worker_batches: batches one worker process runs at once (``D360_WORKER_BATCHES``, 8).
        outage: seconds to ride out a Redis outage before failing (``D360_OUTAGE_TIMEOUT``, 30).
        shutdown_grace: seconds sends in flight get to finish when the worker stops
            (``D360_SHUTDOWN_GRACE``, 5); keep it within taskiq's ``--shutdown-timeout``.
    """
    settings = BrokerSettings.from_env()
    changes: dict[str, Any] = {
        "redis_url": redis_url,
        "queue": queue,
        "idle_timeout": idle_timeout,
        "worker_batches": worker_batches,
        "outage": outage,
        "shutdown_grace": shutdown_grace,
    }
    settings = BrokerSettings(
        **{
            **{name: getattr(settings, name) for name in changes},
            **{name: value for name, value in changes.items() if value is not None},
        }
    )
    made = D360Broker(settings)

    async def send_batch(
        campaign: str,
        channel: str,
        batch: str,
        items: list[Any],
        context: Annotated[Context, TaskiqDepends()],
    ) -> dict[str, int]:
        return await made._run_batch(campaign, channel, batch, items, context)

    async def startup(state: TaskiqState) -> None:
        await made.runtime.startup()

    async def shutdown(state: TaskiqState) -> None:
        await made.runtime.shutdown()

    # Acknowledged by _run_batch: taskiq would acknowledge a stopped batch as done.
    made.register_task(send_batch, task_name=TASK_NAME, ack_type="manual")
    made.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    made.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)
    return made


def broker() -> D360Broker:
    """The broker configured from the environment (``D360_REDIS_URL`` and the others).

    Workers start with ``taskiq worker dialog360_async.distributed:broker``.
    """
    return make_broker()
