"""One bulk run's moving parts: channels, jobs, the lazy intake, the record it keeps, and the
outcomes a message gets without a send."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, Protocol, cast

from . import _json
from ._cloud import Dialog360Client
from ._codes import error_code
from ._converter import unstructure
from ._gate import Gate
from ._journal import JournalError, Ledger, State, new_campaign
from ._middleware import AttemptReport, RetryMiddleware
from ._models import Message
from ._onprem import OnPremiseClient
from ._outcomes import Outcome
from ._policy import CampaignPolicy
from ._ratelimit import Limiter, RateLimiter
from ._retry import PairBackoff
from ._store import BroadcastStore
from .errors import DeliveryUnknownError, Dialog360Error, ValidationError

__all__ = [
    "END",
    "check_arguments",
    "open_journal",
    "shutdown",
    "Book",
    "Channel",
    "Item",
    "Job",
    "LedgerBook",
    "Run",
    "Sender",
    "cancelled",
    "interrupted",
    "message_key",
    "prior",
    "wrap_unexpected",
]

logger = logging.getLogger("dialog360_async")

Sender = Dialog360Client | OnPremiseClient
Item = Message | tuple[Sender, Message]
"""A message, or ``(client, message)`` to send it through that channel."""

END: Final = object()
_CANCEL_ROUNDS: Final = 3  # a worker cancelled mid-settle needs a second cancel; then give up


def message_key(message: Message) -> str:
    """The default journal key: recipient plus a hash of the message content."""
    body = _json.dumps(unstructure(message))
    return f"{message.to}:{hashlib.sha256(body).hexdigest()[:24]}"


class Book(Protocol):
    """What a run records its sends in: a BroadcastStore, or any Ledger through LedgerBook."""

    async def claim_message(self, key: str, *, to: str, channel: str) -> str | None: ...

    async def record_outcome(self, outcome: Outcome) -> None: ...

    def callback_for(self, key: str) -> str | None: ...


class LedgerBook:
    """A Ledger seen as a Book: a settle that fails is logged, never the run's end, and a
    cancellation the ledger raised of its own (the run was not cancelled) is a failure."""

    __slots__ = ("_tag", "ledger")

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # A ledger that tracks delivery (the Redis store) names the callback tag of a key.
        tag = getattr(ledger, "callback_for", None)
        self._tag: Callable[[str], str | None] | None = tag if callable(tag) else None

    def callback_for(self, key: str) -> str | None:
        return None if self._tag is None else self._tag(key)

    async def claim_message(self, key: str, *, to: str, channel: str) -> str | None:
        try:
            return await self.ledger.claim(key)
        except asyncio.CancelledError:
            if _cancelling():
                raise
        raise JournalError(f"the ledger's claim of {key!r} was cancelled; not sent")

    async def record_outcome(self, outcome: Outcome) -> None:
        key, result = cast(str, outcome.key), outcome.result
        try:
            await self.ledger.settle(
                key,
                cast(State, outcome.status),
                message_id=None if result is None else result.message_id,
                code=error_code(outcome.error),
            )
        except asyncio.CancelledError:
            if _cancelling():
                raise
            self._unrecorded(outcome, "cancelled")
        except Exception as exc:  # the send's result is known all the same: report it
            self._unrecorded(outcome, repr(exc))

    @staticmethod
    def _unrecorded(outcome: Outcome, reason: str) -> None:
        logger.warning(
            "could not record the outcome of %s (%s): %s; it stays in doubt in the ledger",
            outcome.key,
            outcome.status,
            reason,
        )

    async def close(self) -> None:
        try:
            await self.ledger.close()
        except Exception:
            logger.exception("closing the ledger failed")


class Channel:
    """Per-channel state: its limiter, pair-limit spacing, its gate (pause, outage, halt) and
    the retry middleware every send through it takes."""

    __slots__ = ("client", "gate", "label", "limiter", "pair", "policy", "retry", "tags")

    def __init__(
        self,
        client: Sender,
        label: str,
        rate: float | str | None,
        outage_timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.client = client
        self.label = label
        # The limit belongs to the channel: the client's limiter (by default the one every
        # client of the key shares) paces the sends. A number re-rates it, or paces the sends
        # of a client built without one; a Limiter of the user's own is used as given.
        own = client.rate_limit
        self.limiter: Limiter | None = own
        if isinstance(rate, int | float) and rate:
            if isinstance(own, RateLimiter):
                own.set_rate(rate)
            elif own is None:
                self.limiter = RateLimiter(rate)
        self.pair = PairBackoff()
        self.policy = client._policy
        self.gate = Gate(self.policy, outage_timeout, clock, sleep)
        # One for the channel, not one a message: each send passes its own AttemptReport.
        self.retry = RetryMiddleware(
            self.policy,
            idempotent=False,
            budget=client.retry_budget,
            limiter=self.limiter,
            gate=self.gate,
        )
        self.tags = isinstance(client, Dialog360Client)  # On-Premise has no callback data


class Job(AttemptReport):
    """One message on its way; it is its own send's attempt report (one object a message)."""

    __slots__ = ("channel", "claimed", "key", "message", "send")

    def __init__(self, channel: Channel, message: Message, key: str | None) -> None:
        self.channel = channel
        self.message = message
        self.send = message  # what goes out: a template instead, when the policy converts it
        self.key = key
        self.claimed = False  # claimed ahead, in the store, before the previous send
        self.attempts = 0  # the report's fields: set here, no second __init__ to call
        self.started = False
        self.started_at = 0.0
        self.pair_limited = False


class Slot:
    """One worker's jobs: the one it is on, and the one it took ahead."""

    __slots__ = ("ahead", "job")

    def __init__(self) -> None:
        self.job: Job | None = None
        self.ahead: Job | Outcome | None = None


class Run:
    """One run's shared state. Workers pull inputs themselves, one at a time, so intake is
    coupled to progress (constant memory) with no producer task or queue in between."""

    def __init__(self, messages: Iterable[Item] | AsyncIterable[Item], size: int) -> None:
        self.out: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)
        self.live = True  # someone is reading `out`
        self.stopping = False
        self.stopped: JournalError | None = None  # the journal failed: nothing more is sent
        self.slots: list[Slot] = []  # one per worker: the job it is on
        self.error: BaseException | None = None
        self._lock = asyncio.Lock()  # an async iterator must not be advanced by two tasks
        self._iterator: Iterator[Item] | None = None
        self._async_iterator: AsyncIterator[Item] | None = None
        if isinstance(messages, AsyncIterable):
            self._async_iterator = aiter(messages)
        elif isinstance(messages, Iterable) and not isinstance(messages, str | bytes):
            self._iterator = iter(messages)
        else:
            raise ValidationError(
                "messages", f"must be an iterable or async iterable, got {type(messages).__name__}"
            )
        # A plain iterable: take_nowait takes from it, with no coroutine a message.
        self.synchronous = self._iterator is not None

    def take_nowait(self) -> Any:
        """The next input of a synchronous one, or END (see :meth:`take`)."""
        if self.stopping or self.error is not None or self._iterator is None:
            return END
        try:
            return next(self._iterator, END)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self.error = exc
            return END

    async def take(self) -> Any:
        """The next input, or END when there is none (or intake stopped)."""
        if self._iterator is not None:
            return self.take_nowait()
        if self.stopping or self.error is not None:
            return END
        try:
            async with self._lock:
                if self.stopping or self.error is not None or self._async_iterator is None:
                    return END
                return await anext(self._async_iterator, END)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self.error = exc
            return END

    def stop(self, error: JournalError) -> None:
        """Stop intake: the journal cannot record sends any more."""
        if self.stopped is None:
            self.stopped = error
            self.stopping = True


def _cancelling() -> bool:
    """Whether the running task was asked to stop (rather than cancelled inside a callee)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def prior(job: Job, state: str) -> Outcome:
    """The outcome of a message its journal refused to claim."""
    if state == "sent":
        return Outcome(message=job.message, status="skipped", key=job.key)
    error: Dialog360Error
    if state == "duplicate":
        error = ValidationError("key", f"duplicate key {job.key!r} in this run: not sent")
        return Outcome(message=job.message, status="failed", error=error, key=job.key)
    error = DeliveryUnknownError(f"in doubt since an earlier attempt ({state}); not resent")
    return Outcome(message=job.message, status="unknown", error=error, key=job.key)


def cancelled(job: Job, error: BaseException | None) -> Outcome:
    return Outcome(message=job.message, status="cancelled", error=error, key=job.key)


def interrupted(job: Job) -> Outcome:
    """The outcome of a send cancelled before its answer."""
    if not job.started:
        return cancelled(job, None)
    error = DeliveryUnknownError("cancelled while the request was in flight")
    return Outcome(
        message=job.message, status="unknown", error=error, attempts=job.attempts, key=job.key
    )


def wrap_unexpected(exc: Exception) -> Dialog360Error:
    error = Dialog360Error(f"unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def check_arguments(
    concurrency: object,
    rate_limit: object,
    outage_timeout: object,
    journal: object,
    key: object,
    on_outcome: object,
    grace: object,
    sleep: object,
    clock: object,
) -> None:
    """The BulkSender's arguments, checked before anything is built."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError("concurrency", f"must be an integer >= 1, got {concurrency!r}")
    if not (rate_limit is None or rate_limit == "channel" or _non_negative(rate_limit)):
        raise ValidationError(
            "rate_limit", f"must be 'channel', a number >= 0 or None, got {rate_limit!r}"
        )
    if not _non_negative(outage_timeout):
        raise ValidationError(
            "outage_timeout", f"must be a number of seconds >= 0, got {outage_timeout!r}"
        )
    if not _non_negative(grace):
        raise ValidationError("grace", f"must be a number of seconds >= 0, got {grace!r}")
    for name, value, optional in (
        ("key", key, True),
        ("on_outcome", on_outcome, True),
        ("sleep", sleep, False),
        ("clock", clock, False),
    ):
        if not (callable(value) or (optional and value is None)):
            raise ValidationError(name, f"must be a callable, got {value!r}")
    ledger = all(callable(getattr(journal, name, None)) for name in ("claim", "settle", "close"))
    if not (journal is None or isinstance(journal, str | os.PathLike) or ledger):
        raise ValidationError(
            "journal", f"must be a file path, a BroadcastStore or a Ledger, got {journal!r}"
        )


def _non_negative(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


async def shutdown(run: Run, workers: list[asyncio.Task[None]], grace: float) -> None:
    """Stop a run that was cancelled or left: intake stops, idle workers and those waiting for
    a permit are cancelled at once (nothing was sent), sends in flight get ``grace``."""
    run.stopping = True
    while not run.out.empty():  # unblock workers waiting to hand over an outcome
        run.out.get_nowait()
    for task, slot in zip(workers, run.slots, strict=True):
        if slot.job is None or not slot.job.started:
            task.cancel()
    _, pending = await asyncio.wait(workers, timeout=grace)
    # A worker cancelled while it sends goes on to record that outcome: cancel it again if
    # that record hangs too.
    for _ in range(_CANCEL_ROUNDS):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    await asyncio.gather(*(w for w in workers if w not in pending), return_exceptions=True)


async def open_journal(
    journal: str | os.PathLike[str] | Ledger | None,
    campaign: str | None,
    policy: CampaignPolicy | None = None,
) -> tuple[Book | None, BroadcastStore | None, str, Callable[[], Awaitable[None]]]:
    """Open a run's journal: ``(book, store, campaign, end)``, ``end`` closing what was opened
    (a store given as a path) or finishing the run (a store given as one)."""
    if journal is None:
        return None, None, campaign or new_campaign(), _nothing
    if not isinstance(journal, str | os.PathLike | BroadcastStore):
        book = LedgerBook(journal)
        return book, None, campaign or new_campaign(), book.close
    if isinstance(journal, BroadcastStore):
        store, owned = journal, False
    else:
        store, owned = BroadcastStore(journal), True
    try:
        store.begin(campaign, policy=policy)
    except BaseException:
        if owned:
            await store.close()
        raise

    async def end() -> None:
        try:
            await store.close() if owned else store.finish()
        except Exception:
            logger.exception("closing the broadcast store %s failed", store.path)

    return store, store, cast(str, store.campaign), end


async def _nothing() -> None:
    pass
