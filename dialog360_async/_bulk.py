"""BulkSender: bounded, rate-limited broadcasts with exactly one outcome per message.

A fixed pool of workers pulls from the input lazily, one item each at a time, so memory stays flat
for any number of messages (gathering one task per message costs ~1.3 GB per million). Each
worker turns every exception into an Outcome: one failure never cancels the others.
Practice: ../shared/docs/reliability-notes.md §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any, Final

import aiohttp

from . import _json
from ._cloud import Dialog360Client
from ._converter import unstructure
from ._journal import Journal, Ledger
from ._middleware import AttemptReport, RetryMiddleware
from ._models import ContactsMessage, LocationMessage, Message
from ._onprem import OnPremiseClient
from ._outcomes import BulkStats, BulkSummary, Outcome, Status
from ._ratelimit import Limiter, RateLimiter
from ._retry import PairBackoff
from .errors import (
    DeliveryUnknownError,
    Dialog360Error,
    PairRateLimitError,
    SpamRateLimitError,
    ValidationError,
)

__all__ = ["BulkSender", "Item", "message_key"]

logger = logging.getLogger("dialog360_async")

Sender = Dialog360Client | OnPremiseClient
Item = Message | tuple[Sender, Message]
"""A message, or ``(client, message)`` to send it through that channel."""

_DONE: Final = object()
_END: Final = object()


def message_key(message: Message) -> str:
    """The default journal key: recipient plus a hash of the message content."""
    body = _json.dumps(unstructure(message))
    return f"{message.to}:{hashlib.sha256(body).hexdigest()[:24]}"


class _Channel:
    """Per-channel state: its limiter, pair-limit spacing, and whether it was halted."""

    __slots__ = ("client", "halted", "label", "limiter", "pair", "policy")

    def __init__(self, client: Sender, label: str, rate: float | None) -> None:
        self.client = client
        self.label = label
        # A client with its own limiter keeps it: it is the channel's limit for every caller.
        own = client.rate_limit
        self.limiter: Limiter | None = (
            own if own is not None else (RateLimiter(rate) if rate else None)
        )
        self.pair = PairBackoff()
        self.policy = client._policy
        self.halted: SpamRateLimitError | None = None


class _Job:
    __slots__ = ("channel", "key", "message", "report")

    def __init__(self, channel: _Channel, message: Message, key: str | None) -> None:
        self.channel = channel
        self.message = message
        self.key = key
        self.report = AttemptReport()


class _Slot:
    __slots__ = ("job",)

    def __init__(self) -> None:
        self.job: _Job | None = None


class _Run:
    """One run's shared state. Workers pull inputs themselves, one at a time, so intake is
    coupled to progress (constant memory) with no producer task or queue in between."""

    def __init__(self, messages: Iterable[Item] | AsyncIterable[Item], size: int) -> None:
        self.out: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)
        self.live = True  # someone is reading `out`
        self.stopping = False
        self.slots: list[_Slot] = []  # one per worker: the job it is on
        self.error: BaseException | None = None
        self._lock = asyncio.Lock()  # an async iterator must not be advanced by two tasks
        self._iterator: Iterator[Item] | None = None
        self._async_iterator: AsyncIterator[Item] | None = None
        if isinstance(messages, AsyncIterable):
            self._async_iterator = aiter(messages)
        else:
            self._iterator = iter(messages)

    async def take(self) -> Any:
        """The next input, or _END when there is none (or intake stopped)."""
        if self.stopping or self.error is not None:
            return _END
        try:
            if self._iterator is not None:
                return next(self._iterator, _END)
            async with self._lock:
                if self.stopping or self.error is not None or self._async_iterator is None:
                    return _END
                return await anext(self._async_iterator, _END)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self.error = exc
            return _END


class BulkSender:
    """Send many messages at a bounded concurrency and rate; one Outcome for each.

    Args:
        client: the default channel's client; items may also be ``(client, message)``.
        concurrency: requests in flight at once.
        rate_limit: messages per second per channel (WhatsApp's default is 80); None or 0
            for no limit. A client built with its own ``rate_limit`` keeps that one.
        journal: path of a JSONL journal (or any :class:`Ledger`); running again with the same
            journal resumes: sent messages are ``"skipped"``, those in doubt ``"unknown"``
            (never resent).
        key: the journal key of a message (default :func:`message_key`); must be unique.
        on_outcome: called with every outcome, including those recorded while a cancelled
            run shuts down (which ``run`` can no longer yield).
        grace: seconds in-flight sends get to finish after a cancellation before they are
            abandoned and reported ``"unknown"``.
        sleep: waits for the pair-limit spacing; injectable for tests.
    """

    def __init__(
        self,
        client: Sender | None = None,
        *,
        concurrency: int = 32,
        rate_limit: float | None = 80.0,
        journal: str | os.PathLike[str] | Ledger | None = None,
        key: Callable[[Message], str] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        grace: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency", f"must be an integer >= 1, got {concurrency!r}")
        if rate_limit is not None and (isinstance(rate_limit, bool) or not rate_limit >= 0):
            raise ValidationError("rate_limit", f"must be >= 0 or None, got {rate_limit!r}")
        self.concurrency = concurrency
        self.rate_limit = rate_limit or None
        self.journal = journal
        self._key = key if key is not None else (message_key if journal is not None else None)
        self._on_outcome = on_outcome
        self._grace = grace
        self._sleep = sleep
        self._clock = clock
        self._default = None if client is None else self._channel_for(client, {})
        self._channels: dict[int, _Channel] = {}
        self._ledger: Ledger | None = None
        self.stats = BulkStats(clock=clock)

    def _channel_for(self, client: Sender, channels: dict[int, _Channel]) -> _Channel:
        if not isinstance(client, Dialog360Client | OnPremiseClient):
            raise ValidationError(
                "client", f"must be a Dialog360Client or OnPremiseClient, got {client!r}"
            )
        found = channels.get(id(client))
        if found is None:
            found = _Channel(client, f"channel-{len(channels) + 1}", self.rate_limit)
            channels[id(client)] = found
        return found

    async def send_all(self, messages: Iterable[Item] | AsyncIterable[Item]) -> BulkSummary:
        """Send everything and return the account of the run.

        Raises:
            Exception: whatever the input iterator raised, after the messages taken before it
                were sent and accounted for.
        """
        async with contextlib.aclosing(self._run(messages, stream=False)) as outcomes:
            async for _ in outcomes:
                pass  # pragma: no cover - nothing is streamed
        return self.stats.summary()

    async def run(
        self, messages: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[Outcome, None]:
        """Yield one Outcome per input as it completes.

        The input is consumed lazily. Leaving the loop early or cancelling stops intake;
        sends in flight get ``grace`` seconds, inputs taken but not attempted are
        ``"cancelled"``; those outcomes go to ``on_outcome`` and :attr:`stats`. Use
        ``contextlib.aclosing(sender.run(...))`` when you may leave the loop early.
        """
        async with contextlib.aclosing(self._run(messages, stream=True)) as outcomes:
            async for outcome in outcomes:
                yield outcome

    async def _run(
        self, messages: Iterable[Item] | AsyncIterable[Item], *, stream: bool
    ) -> AsyncGenerator[Outcome, None]:
        self.stats = BulkStats(clock=self._clock, started=self._clock())
        self._channels = {} if self._default is None else {id(self._default.client): self._default}
        journal = self.journal
        self._ledger = Journal(journal) if isinstance(journal, str | os.PathLike) else journal
        run = _Run(messages, self.concurrency * 2)
        run.live = stream  # without a reader, outcomes are only accounted, never queued
        run.slots = [_Slot() for _ in range(self.concurrency)]
        workers = [asyncio.create_task(self._work(run, slot)) for slot in run.slots]
        finished = False
        try:
            if stream:
                remaining = self.concurrency
                while remaining:
                    got = await run.out.get()
                    if got is _DONE:
                        remaining -= 1
                    else:
                        yield got
            else:
                # wait(), not gather(): a cancelled gather would cancel the workers at once,
                # denying sends in flight their grace period.
                await asyncio.wait(workers)
            for worker in workers:
                worker.result()
            finished = True
        finally:
            run.live = False
            if not finished:
                await self._shutdown(run, workers)
            self.stats.finished = self._clock()
            if self._ledger is not None:
                await self._ledger.close()
        if run.error is not None:
            raise run.error

    def _job(self, item: Item) -> _Job | Outcome:
        client: Sender | None = None
        message: Any = item
        if isinstance(item, tuple) and len(item) == 2:
            client, message = item
        try:
            if not isinstance(message, LocationMessage | ContactsMessage):
                raise ValidationError(
                    "message", f"must be a LocationMessage or ContactsMessage, got {message!r}"
                )
            if client is not None:
                channel = self._channel_for(client, self._channels)
            elif self._default is not None:
                channel = self._default
            else:
                raise ValidationError("client", "no client given for this message")
            key = self._key(message) if self._key is not None else None
        except Exception as exc:  # a bad item is one failed outcome, not a failed run
            return Outcome(message=message, status="failed", error=exc)
        return _Job(channel, message, key)

    async def _work(self, run: _Run, slot: _Slot) -> None:
        while (item := await run.take()) is not _END:
            self.stats.taken += 1
            job = self._job(item)
            if isinstance(job, Outcome):
                await self._emit(run, job)
                continue
            slot.job = job
            outcome = await self._attempt(job)
            slot.job = None
            await self._emit(run, outcome)
        if run.live:
            await run.out.put(_DONE)

    async def _attempt(self, job: _Job) -> Outcome:
        channel = job.channel
        if channel.halted is not None:
            return _cancelled(job, channel.halted)
        report = job.report
        ledger = self._ledger if job.key is not None else None
        claimed = False
        self.stats.in_flight += 1
        try:
            wait = channel.pair.wait_time(job.message.to)
            if wait > 0:
                await self._sleep(wait)  # 131056 spacing: only this recipient waits
            middleware = RetryMiddleware(
                channel.policy,
                idempotent=False,
                budget=channel.client.retry_budget,
                limiter=channel.limiter,
                report=report,
            )
            if ledger is not None and job.key is not None:
                prior = await ledger.claim(job.key)
                if prior is not None:
                    return _prior(job, prior)
                claimed = True
            result = await channel.client._deliver(job.message, (middleware,))
            latency = time.monotonic() - report.started_at  # the limiter wait is not latency
        except asyncio.CancelledError:
            outcome = self._interrupted(job, report)
            self._account(outcome)
            if claimed:
                await asyncio.shield(_settle(ledger, outcome))
            raise
        except Exception as exc:
            outcome = self._failed(job, exc, report)
        else:
            outcome = Outcome(
                message=job.message,
                status="sent",
                result=result,
                attempts=report.attempts,
                key=job.key,
                latency=latency,
            )
        finally:
            self.stats.in_flight -= 1
        if claimed:
            await _settle(ledger, outcome)
        if report.pair_limited:
            channel.pair.penalize(job.message.to)
        elif outcome.ok:
            channel.pair.clear(job.message.to)
        return outcome

    def _failed(self, job: _Job, exc: Exception, report: AttemptReport) -> Outcome:
        status: Status = "unknown" if isinstance(exc, DeliveryUnknownError) else "failed"
        if isinstance(exc, SpamRateLimitError) and job.channel.halted is None:
            job.channel.halted = exc  # stop this channel's campaign; the others go on
            self.stats.halted[job.channel.label] = str(exc)
        if isinstance(exc, PairRateLimitError):
            report.pair_limited = True
        if not isinstance(exc, Dialog360Error | aiohttp.ClientError):
            exc = _wrap_unexpected(exc)
        return Outcome(
            message=job.message, status=status, error=exc, attempts=report.attempts, key=job.key
        )

    @staticmethod
    def _interrupted(job: _Job, report: AttemptReport) -> Outcome:
        if not report.started:
            return _cancelled(job, None)
        error = DeliveryUnknownError("cancelled while the request was in flight")
        return Outcome(
            message=job.message,
            status="unknown",
            error=error,
            attempts=report.attempts,
            key=job.key,
        )

    async def _emit(self, run: _Run, outcome: Outcome) -> None:
        self._account(outcome)
        if run.live:
            await run.out.put(outcome)

    def _account(self, outcome: Outcome) -> None:
        self.stats.count(outcome)
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception:  # a broken callback must not lose the other outcomes
                logger.exception("on_outcome callback failed")

    async def _shutdown(self, run: _Run, workers: list[asyncio.Task[None]]) -> None:
        run.stopping = True  # intake stops: no worker takes another input
        while not run.out.empty():  # unblock workers waiting to hand over an outcome
            run.out.get_nowait()
        for task, slot in zip(workers, run.slots, strict=True):
            if slot.job is None or not slot.job.report.started:
                task.cancel()  # idle, or waiting for a permit: nothing was sent, so no grace
        _, pending = await asyncio.wait(workers, timeout=self._grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def _settle(ledger: Ledger | None, outcome: Outcome) -> None:
    if ledger is None or outcome.key is None:
        return
    result = outcome.result
    await ledger.settle(
        outcome.key,
        "sent" if outcome.status == "skipped" else outcome.status,
        message_id=result.message_id if result is not None else None,
        code=getattr(outcome.error, "code", None),
    )


def _prior(job: _Job, state: str) -> Outcome:
    if state == "sent":
        return Outcome(message=job.message, status="skipped", key=job.key)
    error = DeliveryUnknownError(f"in doubt since an earlier attempt ({state}); not resent")
    return Outcome(message=job.message, status="unknown", error=error, key=job.key)


def _cancelled(job: _Job, error: BaseException | None) -> Outcome:
    return Outcome(message=job.message, status="cancelled", error=error, key=job.key)


def _wrap_unexpected(exc: Exception) -> Dialog360Error:
    error = Dialog360Error(f"unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
