"""BulkSender: bounded, rate-limited broadcasts with exactly one outcome per message.

A fixed pool of workers pulls from the input lazily, one item each at a time, so memory stays flat
for any number of messages (gathering one task per message costs ~1.3 GB per million). Each
worker turns every exception into an Outcome: one failure never cancels the others.
Practice: ../shared/docs/reliability-notes.md §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Final, Literal, cast

import aiohttp

from ._base import CHANNEL
from ._bulk_run import (
    END,
    Book,
    Channel,
    Item,
    Job,
    Run,
    Sender,
    Slot,
    cancelled,
    check_arguments,
    interrupted,
    message_key,
    open_journal,
    prior,
    shutdown,
    wrap_unexpected,
)
from ._cloud import Dialog360Client
from ._codes import error_code
from ._gate import Gate, halts_channel, unsent_by_gate, waits
from ._journal import JournalError, Ledger, check_name
from ._models import Message, check_message
from ._onprem import OnPremiseClient
from ._outcomes import BulkStats, BulkSummary, Outcome, Status
from ._policy import CampaignPolicy, Convert, check_converted, check_reach
from ._store import BroadcastStore
from ._templates import TemplateMessage
from .errors import (
    APIError,
    DeliveryUnknownError,
    Dialog360Error,
    PairRateLimitError,
    TemplateHaltedError,
    ValidationError,
    WindowClosedError,
)

__all__ = ["BulkSender", "Item", "message_key"]

logger = logging.getLogger("dialog360_async")

_DONE: Final = object()


class BulkSender:
    """Send many messages at a bounded concurrency and rate; one Outcome for each.

    Args:
        client: the default channel's client; items may also be ``(client, message)``.
        concurrency: requests in flight at once.
        rate_limit: ``"channel"`` (the default), None or 0: each channel's client paces the
            sends with its limiter (by default the one every client of its key shares, 80
            msg/s; none for a client built with ``rate_limit=None``). A number of messages per
            second re-rates that limiter, or paces the sends of a client without one.
        outage_timeout: seconds a channel may fail to reach its server (no answer, nothing
            sent) before its remaining messages end ``"failed"`` with
            :class:`UnreachableError`. Until then throttling and such failures make the channel
            wait (one backoff shared by its workers) and never fail a message.
        journal: path of a :class:`BroadcastStore` (one SQLite file per broadcast), a store,
            or any :class:`Ledger`. Running again with the same journal resumes: sent messages
            are ``"skipped"``, those in doubt ``"unknown"`` (never resent).
        key: the journal key of a message (default :func:`message_key`): a non-empty string,
            unique within a run.
        on_outcome: called with every outcome, including those recorded while a cancelled
            run shuts down (which ``run`` can no longer yield).
        policy: what failure codes mean for this run and later ones (suppression list,
            deferrals, halts, the 131047 fallback); default: :class:`CampaignPolicy`'s.
        outside_window: what to do with a free-form message to a user whose 24-hour window
            is closed, as the store's webhooks show it: ``"send"`` (the default: no check),
            ``"skip"`` (``skipped`` with :class:`WindowClosedError`), or a callable turning
            it into the :class:`TemplateMessage` to send instead (None: skip it). Needs a
            :class:`BroadcastStore` journal.
        grace: seconds in-flight sends get to finish after a cancellation before they are
            abandoned and reported ``"unknown"``.
        sleep: waits for the pair-limit spacing; injectable for tests.
        clock: the monotonic clock of the run's statistics.

    Raises:
        ValidationError: an argument has the wrong type or value.
    """

    def __init__(
        self,
        client: Sender | None = None,
        *,
        concurrency: int = 32,
        rate_limit: float | Literal["channel"] | None = CHANNEL,
        outage_timeout: float = 60.0,
        journal: str | os.PathLike[str] | Ledger | None = None,
        key: Callable[[Message], str] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        policy: CampaignPolicy | None = None,
        outside_window: Literal["send", "skip"] | Convert = "send",
        grace: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_arguments(
            concurrency, rate_limit, outage_timeout, journal, key, on_outcome, grace, sleep, clock
        )
        store = isinstance(journal, str | os.PathLike | BroadcastStore)
        self.policy = check_reach(policy, outside_window, store)
        self.outside_window = outside_window
        self.concurrency = concurrency
        self.rate_limit = rate_limit or None  # 0 is None
        self.outage_timeout = float(outage_timeout)
        self.journal = journal
        self.campaign: str | None = None
        """The campaign of the current (or last) run."""
        self.store: BroadcastStore | None = None
        """The store of the current (or last) run, when the journal is one."""
        self._key = key if key is not None else (message_key if journal is not None else None)
        self._on_outcome = on_outcome
        self._grace = float(grace)
        self._sleep = sleep
        self._clock = clock
        self._default = None if client is None else self._channel_for(client, {})
        self._channels: dict[int, Channel] = {}
        self._book: Book | None = None
        self._halted: dict[tuple[int, str], TemplateHaltedError] = {}  # (channel, template)
        self.stats = BulkStats(clock=clock)

    def _channel_for(self, client: Sender, channels: dict[int, Channel]) -> Channel:
        if not isinstance(client, Dialog360Client | OnPremiseClient):
            raise ValidationError(
                "client", f"must be a Dialog360Client or OnPremiseClient, got {client!r}"
            )
        found = channels.get(id(client))
        if found is None:
            found = Channel(
                client,
                f"channel-{len(channels) + 1}",
                self.rate_limit,
                self.outage_timeout,
                self._clock,
                self._sleep,
            )
            channels[id(client)] = found
        return found

    async def send_all(
        self, messages: Iterable[Item] | AsyncIterable[Item], *, campaign: str | None = None
    ) -> BulkSummary:
        """Send everything and return the account of the run.

        Args:
            messages: the inputs, consumed lazily.
            campaign: the campaign's name in the store; default: the store's last campaign
                (so that running again resumes it), else a new name (see :attr:`campaign`).

        Raises:
            JournalError: the journal is in use by another sender or is no broadcast store
                (nothing was sent).
            Exception: whatever the input iterator raised, after the messages taken before it
                were sent and accounted for.
        """
        async with contextlib.aclosing(self._run(messages, False, campaign)) as outcomes:
            async for _ in outcomes:
                pass  # pragma: no cover - nothing is streamed
        return self.stats.summary()

    async def run(
        self, messages: Iterable[Item] | AsyncIterable[Item], *, campaign: str | None = None
    ) -> AsyncGenerator[Outcome, None]:
        """Yield one Outcome per input as it completes (``campaign`` as in :meth:`send_all`).

        The input is consumed lazily. Leaving the loop early or cancelling stops intake;
        sends in flight get ``grace`` seconds, inputs taken but not attempted are
        ``"cancelled"``; those outcomes go to ``on_outcome`` and :attr:`stats`. Use
        ``contextlib.aclosing(sender.run(...))`` when you may leave the loop early.
        """
        async with contextlib.aclosing(self._run(messages, True, campaign)) as outcomes:
            async for outcome in outcomes:
                yield outcome

    async def _run(
        self, messages: Iterable[Item] | AsyncIterable[Item], stream: bool, campaign: str | None
    ) -> AsyncGenerator[Outcome, None]:
        if campaign is not None:
            check_name(campaign, "campaign")
        run = Run(messages, self.concurrency * 2)
        run.live = stream  # without a reader, outcomes are only accounted, never queued
        run.slots = [Slot() for _ in range(self.concurrency)]
        # A journal that cannot be used raises here: nothing is sent.
        self._book, self.store, self.campaign, end = await open_journal(
            self.journal, campaign, self.policy
        )
        self._halted = {}
        self.stats = BulkStats(clock=self._clock, started=self._clock(), campaign=self.campaign)
        if self._default is not None:  # a fresh gate each run: a halt or outage ends with it
            self._default = self._channel_for(self._default.client, {})
        self._channels = {} if self._default is None else {id(self._default.client): self._default}
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
                await shutdown(run, workers, self._grace)
            self.stats.finished = self._clock()
            await end()
        if run.error is not None:
            raise run.error

    def _job(self, item: Item) -> Job | Outcome:
        client: Sender | None = None
        message: Any = item
        if isinstance(item, tuple) and len(item) == 2:
            client, message = item
        try:
            check_message(message)
            if client is not None:
                channel = self._channel_for(client, self._channels)
            elif self._default is not None:
                channel = self._default
            else:
                raise ValidationError("client", "no client given for this message")
            key = None if self._key is None else check_name(self._key(message), "key")
            job = Job(channel, message, key)
            return job if self.store is None and not self._halted else self._reach(job)
        except Exception as exc:  # a bad item is one failed outcome, not a failed run
            return Outcome(message=message, status="failed", error=exc)

    def _reach(self, job: Job) -> Job | Outcome:
        """The policy's say before a send: the suppression list, the window, a halted
        template (_policy.py)."""
        store, message = self.store, job.message
        if store is not None:
            entry = store.suppressions.skips(message.to, self.policy.marketing)
            if entry is not None:
                return Outcome(message=message, status="skipped", error=entry.error(), key=job.key)
            if (
                self.outside_window != "send"
                and not isinstance(message, TemplateMessage)
                and not store.in_window(message.to)
            ):
                converted = None
                if callable(self.outside_window):
                    converted = check_converted(self.outside_window(message), message)
                if converted is None:
                    error = WindowClosedError(
                        f"window closed: {message.to} has not written in the last 24 h"
                    )
                    return Outcome(message=message, status="skipped", error=error, key=job.key)
                job.send = converted
        halted = self._template_halt(job) if self._halted else None
        return job if halted is None else cancelled(job, halted)

    def _template_halt(self, job: Job) -> TemplateHaltedError | None:
        send = job.send
        if not self._halted or not isinstance(send, TemplateMessage):
            return None
        return self._halted.get((id(job.channel), send.template.name))

    async def _work(self, run: Run, slot: Slot) -> None:
        try:
            while True:
                job: Job | Outcome
                if slot.ahead is not None:
                    job, slot.ahead = slot.ahead, None
                    if run.stopping and isinstance(job, Job):
                        job = self._unsent(job, run.stopped)
                else:
                    item = run.take_nowait() if run.synchronous else await run.take()
                    if item is END:
                        break
                    self.stats.taken += 1
                    job = self._job(item)
                if isinstance(job, Outcome):
                    outcome = job
                else:
                    slot.job = job
                    outcome = await self._attempt(run, slot, job)
                    slot.job = None
                self._account(outcome)
                if run.live:
                    await run.out.put(outcome)
        except asyncio.CancelledError:
            ahead, slot.ahead = slot.ahead, None
            if ahead is not None:
                self._account(ahead if isinstance(ahead, Outcome) else self._unsent(ahead, None))
            raise
        if run.live:
            await run.out.put(_DONE)

    async def _attempt(self, run: Run, slot: Slot, job: Job) -> Outcome:
        channel = job.channel
        gate = channel.gate
        if gate.closed is not None:
            return self._closed(job, gate)
        if self._halted and (halted := self._template_halt(job)) is not None:
            return self._unsent(job, halted)
        key = job.key
        book = self._book if key is not None else None
        claimed = False
        self.stats.in_flight += 1
        try:
            wait = channel.pair.wait_time(job.message.to)
            if wait > 0:
                await self._sleep(wait)  # 131056 spacing: only this recipient waits
            tag = None
            if book is not None and key is not None:
                store = self.store
                if run.stopped is not None:
                    return self._unsent(job, run.stopped)
                if job.claimed and store is not None:  # ahead: committed now if not yet
                    job.claimed = False
                    found = store.confirm(key)
                else:
                    found = await book.claim_message(key, to=job.message.to, channel=channel.label)
                if found is not None:
                    return prior(job, found)
                claimed = True
                if store is not None and channel.limiter is None and slot.ahead is None:
                    await self._claim_ahead(run, slot, store)
                # Cloud sends carry the row's callback tag: its status webhooks name it, so a
                # send whose answer was lost (unknown) is settled by them (design.md, store).
                if channel.tags:
                    tag = book.callback_for(key)
            try:
                result = await channel.client._deliver(
                    job.send, channel.retry, callback_data=tag, report=job
                )
            except APIError as exc:
                converted = self._fallback(job, exc)
                if converted is None:
                    raise
                job.send = converted  # refused outright, so nothing was sent: send the template
                result = await channel.client._deliver(
                    converted, channel.retry, callback_data=tag, report=job
                )
            gate.succeeded()
            latency = time.monotonic() - job.started_at  # the limiter wait is not latency
        except asyncio.CancelledError:
            outcome = interrupted(job)
            self._account(outcome)
            if claimed and book is not None:
                await book.record_outcome(outcome)  # unshielded: the shutdown may cut it short
            elif job.claimed and self.store is not None and job.key is not None:
                self.store.release(job.key)
            raise
        except Exception as exc:
            outcome = self._failed(run, job, exc)
        else:
            outcome = Outcome(
                message=job.message,
                status="sent",
                result=result,
                attempts=job.attempts,
                key=job.key,
                latency=latency,
                sent_as=None if job.send is job.message else job.send,
            )
        finally:
            self.stats.in_flight -= 1
        if claimed and book is not None:
            try:
                await book.record_outcome(outcome)
            except asyncio.CancelledError:
                self._account(outcome)  # the send's real result counts all the same
                raise
        elif job.claimed and self.store is not None and job.key is not None:
            self.store.release(job.key)  # claimed ahead, then not sent
        if job.pair_limited:
            channel.pair.penalize(job.message.to)
        elif outcome.ok:
            channel.pair.clear(job.message.to)
        return outcome

    async def _claim_ahead(self, run: Run, slot: Slot, store: BroadcastStore) -> None:
        """Take the next input and claim it before this send.

        Without a rate limit the run is CPU-bound. A claim that waits for its commit between
        two sends costs a loop iteration and, worse, garbage collections (the frees of one
        answer and the allocations of the next request no longer share a step); claimed one
        send ahead, it is committed by the time it is sent, in one commit with the claims of
        every other worker. The price: after a crash, one more message per worker may be in
        doubt (claimed, never sent)."""
        if run.stopping:
            return
        item = run.take_nowait() if run.synchronous else await run.take()
        if item is END:
            return
        self.stats.taken += 1
        job = self._job(item)
        if isinstance(job, Job) and job.key is not None and job.channel.limiter is None:
            try:
                found = store.claim_nowait(job.key, to=job.message.to, channel=job.channel.label)
            except Exception as exc:
                job = self._failed(run, job, exc)
            else:
                if found is None:
                    job.claimed = True
                else:
                    job = prior(job, found)
        slot.ahead = job

    def _unsent(self, job: Job, error: BaseException | None) -> Outcome:
        """A taken input that will not be attempted: ``cancelled``, its claim freed."""
        if job.claimed and self.store is not None and job.key is not None:
            self.store.release(job.key)
        return cancelled(job, error)

    def _failed(self, run: Run, job: Job, exc: Exception) -> Outcome:
        gate = job.channel.gate
        if unsent_by_gate(exc, gate) or (gate.down is not None and waits(exc)):
            return self._closed(job, gate, job.attempts)  # not sent: the channel closed
        status: Status = "unknown" if isinstance(exc, DeliveryUnknownError) else "failed"
        code = error_code(exc) if isinstance(exc, APIError) else None
        if (halts_channel(exc) or code in self.policy.halt_channel) and gate.halted is None:
            gate.halt(cast(Dialog360Error, exc))  # stop this channel's campaign; others go on
            self.stats.halted[job.channel.label] = str(exc)
        if code in self.policy.halt_template and isinstance(job.send, TemplateMessage):
            name = job.send.template.name
            self._halted.setdefault(
                (id(job.channel), name),
                TemplateHaltedError(
                    f"template {name!r} halted on {job.channel.label}: {exc}", code=code
                ),
            )
        if isinstance(exc, APIError) and not waits(exc):
            gate.succeeded()  # an answer: the server is reachable
        if isinstance(exc, PairRateLimitError):
            job.pair_limited = True
        if isinstance(exc, JournalError) and run.stopped is None:
            run.stop(exc)  # unrecorded sends are not made: the whole run stops
            self.stats.stopped = str(exc)
        if not isinstance(exc, Dialog360Error | aiohttp.ClientError):
            exc = wrap_unexpected(exc)
        return Outcome(
            message=job.message, status=status, error=exc, attempts=job.attempts, key=job.key
        )

    def _fallback(self, job: Job, error: APIError) -> TemplateMessage | None:
        """The policy's template for a free-form send refused because the window is closed."""
        fallback = self.policy.fallback
        if (
            fallback is None
            or error.code not in self.policy.window_codes
            or isinstance(job.send, TemplateMessage)
        ):
            return None
        return check_converted(fallback(job.message), job.message)

    def _closed(self, job: Job, gate: Gate, attempts: int = 0) -> Outcome:
        """A message its closed channel did not send: ``cancelled`` with the reason of a halt,
        ``failed`` when the channel stayed unreachable."""
        if gate.down is None:
            return self._unsent(job, gate.halted)
        if job.claimed and self.store is not None and job.key is not None:
            self.store.release(job.key)
        return Outcome(
            message=job.message, status="failed", error=gate.down, attempts=attempts, key=job.key
        )

    def _account(self, outcome: Outcome) -> None:
        self.stats.count(outcome)
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception:  # a broken callback must not lose the other outcomes
                logger.exception("on_outcome callback failed")
