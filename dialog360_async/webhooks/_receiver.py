"""``WebhookReceiver``: verify, answer 200 at once, then run the callbacks in a bounded pool.

360dialog counts a webhook delivered only on exactly 200 within 5 s (target: a 250 ms median)
and redelivers anything else for up to 7 days (../shared/docs/webhooks-and-statuses.md §2.4,
§2.5). So the answer never waits for a callback, and every answer other than 200 is one that
360dialog's redelivery makes safe: nothing is recorded before it.

Order in the handler: auth headers (401), size (413), signature over the raw body (401), parse
(a body that is no webhook is counted and answered 200: a 4xx would be redelivered for days),
a queue slot, the store's ``record_webhook`` (dedup; durable before the 200), then 200.

Backpressure: at most ``queue_size`` webhooks are accepted but not yet dispatched. When the
callbacks fall behind, a POST waits up to ``queue_timeout`` for a slot and, if none frees up,
is answered 503 *before* anything is recorded: 360dialog redelivers it later, so nothing is
dropped and the ack stays bounded well under the 5 s limit.

Callbacks run at most once per status: the store marks it seen before the 200, so an item
whose callback had not run when the process stopped (or crashed) is not redelivered. The
store keeps it; a stop counts it in ``stats.abandoned`` and logs it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import attrs
from aiohttp import web

from .._body import buffered, read_capped, small_reads
from .._secret import Secret
from ..errors import ValidationError
from ._dedup import MemoryWebhookStore, WebhookStore
from ._errors import WebhookError
from ._models import InboundMessage, Notification, StatusUpdate, WebhookStats
from ._parse import parse_webhook
from ._verify import SIGNATURE_HEADER, Verifier, wrap, wrap_headers

__all__ = ["MAX_BODY", "WebhookReceiver"]

logger = logging.getLogger("dialog360_async.webhooks")

MAX_BODY = 4 * 1024 * 1024  # Meta's payloads reach "up to 3 MB"

StatusCallback = Callable[[StatusUpdate], object]
MessageCallback = Callable[[InboundMessage], object]


def _ok() -> web.Response:
    return web.Response(status=200)


def _is_async(callback: Callable[..., object]) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


def _check_count(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"WebhookReceiver.{field}", f"must be an int >= {minimum}")
    return value


def _check_seconds(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValidationError(f"WebhookReceiver.{field}", "must be a number of seconds >= 0")
    return float(value)


def _check_callback(field: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ValidationError(f"WebhookReceiver.{field}", "must be callable or None")


class WebhookReceiver:
    """Receives 360dialog webhooks (Cloud and On-Premise) in an aiohttp.web application.

    Mount ``receiver.handler`` on a POST route of your app and run ``async with receiver:``
    around it, or serve ``receiver.app()``, which does both. Callbacks may be sync or async;
    sync ones run in a thread pool of ``concurrency`` threads so they never block the acks.

    Args:
        store: persists webhooks and drops duplicates (see :class:`WebhookStore`); default: in
            memory, 7 days, forgotten on restart.
        on_status: called once per new :class:`StatusUpdate`; an exception it raises is logged
            and counted, it never changes the answer.
        on_message: called once per new :class:`InboundMessage`, likewise.
        auth_headers: headers every POST must carry, as set with the webhook URL.
        signature_secret: the partner platform secret; then every POST must carry a valid
            ``x-360dialog-signature``.
        max_body: larger bodies are answered 413.
        concurrency: callbacks running at once.
        queue_size: webhooks accepted but not yet dispatched, at most.
        queue_timeout: seconds a POST waits for a queue slot before it is answered 503.
        shutdown_timeout: seconds ``close()`` lets queued callbacks finish.
    """

    def __init__(
        self,
        *,
        store: WebhookStore | None = None,
        on_status: StatusCallback | None = None,
        on_message: MessageCallback | None = None,
        auth_headers: Mapping[str, str | Secret] | None = None,
        signature_secret: str | Secret | None = None,
        max_body: int = MAX_BODY,
        concurrency: int = 16,
        queue_size: int = 1024,
        queue_timeout: float = 1.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        headers, signature = wrap_headers(auth_headers), wrap(signature_secret)
        del auth_headers, signature_secret  # no frame of a failed constructor may hold them
        if store is not None and not isinstance(store, WebhookStore):
            raise ValidationError("WebhookReceiver.store", "must have async record_webhook()")
        _check_callback("on_status", on_status)
        _check_callback("on_message", on_message)
        self._verifier = Verifier.checked(headers, signature)
        self._store: WebhookStore = MemoryWebhookStore() if store is None else store
        self._on_status = on_status
        self._on_message = on_message
        self._status_async = on_status is not None and _is_async(on_status)
        self._message_async = on_message is not None and _is_async(on_message)
        self._max_body = _check_count("max_body", max_body, 1)
        self._concurrency = _check_count("concurrency", concurrency, 1)
        self._queue_size = _check_count("queue_size", queue_size, 1)
        self._queue_timeout = _check_seconds("queue_timeout", queue_timeout)
        self._shutdown_timeout = _check_seconds("shutdown_timeout", shutdown_timeout)
        self._running = False
        self._dispatching = False  # workers take from the queue
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()
        self._slots = asyncio.Semaphore(queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._counts = dict.fromkeys(attrs.fields_dict(WebhookStats), 0)

    def __repr__(self) -> str:
        # getattr: error trackers may show a receiver whose constructor failed half-way.
        verifier = getattr(self, "_verifier", None)
        names = [name for name, _ in verifier.headers] if verifier is not None else []
        signed = verifier is not None and verifier.signature is not None
        return (
            f"WebhookReceiver(auth_headers={names!r}, signature={signed}, "
            f"store={getattr(self, '_store', None)!r}, "
            f"concurrency={getattr(self, '_concurrency', None)}, "
            f"running={getattr(self, '_running', False)})"
        )

    @property
    def stats(self) -> WebhookStats:
        """A snapshot of the counters."""
        return WebhookStats(**self._counts)

    @property
    def running(self) -> bool:
        return self._running

    def app(self, path: str = "/webhook") -> web.Application:
        """An application serving the handler on ``POST path`` and running the pool with it."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValidationError("WebhookReceiver.app.path", "must start with '/'")
        app = web.Application()
        app.router.add_post(path, self.handler)
        app.cleanup_ctx.append(self._lifespan)
        return app

    async def _lifespan(self, app: web.Application) -> AsyncIterator[None]:
        async with self:
            yield

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the callback pool; the handler answers 503 until then."""
        if self._running:
            raise RuntimeError("this WebhookReceiver is already running")
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self._queue_size)
        if (self._on_status is not None and not self._status_async) or (
            self._on_message is not None and not self._message_async
        ):
            self._threads = concurrent.futures.ThreadPoolExecutor(
                self._concurrency, thread_name_prefix="webhook-callback"
            )
        if self._on_status is not None or self._on_message is not None:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
            self._dispatching = True
        self._running = True

    async def close(self) -> None:
        """Stop answering 200, let queued callbacks finish (up to ``shutdown_timeout``), stop."""
        if not self._running:
            return
        self._running = False
        if self._workers:
            try:
                async with asyncio.timeout(self._shutdown_timeout):
                    await self._queue.join()
            except TimeoutError:
                pass
            self._dispatching = False
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
        left = 0
        while not self._queue.empty():
            notification = self._queue.get_nowait()
            left += len(notification.statuses) + len(notification.messages)
        self._counts["abandoned"] += left
        if self._counts["abandoned"]:
            logger.warning(
                "webhook receiver stopped with %d item(s) not dispatched to callbacks "
                "(recorded in the store, so not redelivered)",
                self._counts["abandoned"],
            )
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def handler(self, request: web.Request) -> web.Response:
        """The aiohttp.web handler: mount it on a POST route."""
        counts = self._counts
        small_reads(request.transport)  # for the connection's next webhooks
        if not self._running:
            counts["deferred"] += 1
            level = logging.ERROR if counts["deferred"] == 1 else logging.DEBUG
            logger.log(level, "webhook answered 503: the receiver is not running (`async with`)")
            return web.Response(status=503)
        verifier = self._verifier
        if verifier.headers and not verifier.headers_ok(request.headers):
            return self._reject(401, "a missing or wrong auth header")
        # From the stream, not request.read(): that one obeys the application's
        # client_max_size (1 MiB by default), not max_body.
        content = request.content
        got = buffered(content, self._max_body)
        if got is None:  # still on its way: refused by its length before it is read, if it can
            length = request.content_length
            if length is not None and length > self._max_body:
                return self._reject(413, f"Content-Length {length} over max_body")
            got = await read_capped(content, self._max_body)
        body, whole = got
        if not whole:
            return self._reject(413, "a body over max_body")
        if verifier.signature is not None and not verifier.signature_ok(
            request.headers.get(SIGNATURE_HEADER), body
        ):
            return self._reject(401, f"a missing or wrong {SIGNATURE_HEADER}")
        counts["received"] += 1
        try:
            notification = parse_webhook(body)
        except WebhookError as exc:
            counts["invalid"] += 1
            level = logging.WARNING if counts["invalid"] == 1 else logging.DEBUG
            logger.log(level, "webhook body ignored (answered 200): %s", exc)
            return _ok()
        return await self._accept(notification)

    def _reject(self, status: int, why: str) -> web.Response:
        self._counts["rejected"] += 1
        level = logging.WARNING if self._counts["rejected"] == 1 else logging.DEBUG
        logger.log(level, "webhook answered %d: %s", status, why)
        return web.Response(status=status)

    async def _accept(self, notification: Notification) -> web.Response:
        counts = self._counts
        counts["statuses"] += len(notification.statuses)
        counts["messages"] += len(notification.messages)
        counts["skipped"] += notification.skipped
        if notification.errors:
            counts["errors"] += len(notification.errors)
            for error in notification.errors:
                logger.warning("webhook error %s: %s", error.code, error.message)
        queued = bool(
            (self._on_status is not None and notification.statuses)
            or (self._on_message is not None and notification.messages)
        )
        if queued:
            if not self._slots.locked():
                await self._slots.acquire()  # a free slot: returns at once, no timer
            elif not await self._wait_slot():
                counts["deferred"] += 1
                logger.warning(
                    "webhook answered 503: %d webhooks wait for callbacks", self._queue_size
                )
                return web.Response(status=503)
            if not self._running:  # stopped while this POST waited: 360dialog redelivers it
                self._slots.release()
                counts["deferred"] += 1
                return web.Response(status=503)
        try:
            fresh = await self._store.record_webhook(notification)
            if fresh is not notification:  # the stores return it as it is when all is new
                counts["duplicates"] += (
                    len(notification.statuses)
                    + len(notification.messages)
                    - len(fresh.statuses)
                    - len(fresh.messages)
                )
        except Exception:
            if queued:
                self._slots.release()
            counts["store_errors"] += 1
            logger.exception("webhook answered 500: the store failed (360dialog will redeliver)")
            return web.Response(status=500)
        except BaseException:
            if queued:
                self._slots.release()
            raise
        if queued:
            new = (len(fresh.statuses) if self._on_status is not None else 0) + (
                len(fresh.messages) if self._on_message is not None else 0
            )
            if new and self._dispatching:
                self._queue.put_nowait(fresh)
            else:
                self._slots.release()
                if new:  # recorded while the pool stopped: the store has it, the callbacks not
                    counts["abandoned"] += new
                    logger.warning("webhook recorded after the callbacks stopped: %d item(s)", new)
        return _ok()

    async def _wait_slot(self) -> bool:
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _work(self) -> None:
        queue = self._queue
        while True:
            notification = await queue.get()
            try:
                await self._dispatch(notification)
            finally:
                self._slots.release()
                queue.task_done()

    async def _dispatch(self, notification: Notification) -> None:
        # Async callbacks are awaited right here: no task or coroutine layer per item.
        counts = self._counts
        calls: list[tuple[Callable[[Any], Any], bool, tuple[Any, ...]]] = []
        if self._on_status is not None and notification.statuses:
            calls.append((self._on_status, self._status_async, notification.statuses))
        if self._on_message is not None and notification.messages:
            calls.append((self._on_message, self._message_async, notification.messages))
        left = sum(len(items) for _, _, items in calls)
        try:
            for callback, is_async, items in calls:
                for item in items:
                    counts["dispatched"] += 1
                    try:
                        if is_async:
                            await callback(item)
                        else:
                            await self._call_sync(callback, item)
                    except Exception:
                        self._failed(item)
                    left -= 1
        except asyncio.CancelledError:
            counts["abandoned"] += left
            raise

    async def _call_sync(self, callback: Callable[[Any], object], item: Any) -> None:
        result = await asyncio.get_running_loop().run_in_executor(self._threads, callback, item)
        if inspect.isawaitable(result):
            await result

    def _failed(self, item: StatusUpdate | InboundMessage) -> None:
        self._counts["callback_errors"] += 1
        if isinstance(item, StatusUpdate):
            logger.exception(
                "webhook on_status callback failed for %s (%s)", item.message_id, item.status
            )
        else:
            logger.exception(
                "webhook on_message callback failed for %s (%s)", item.message_id, item.type
            )
