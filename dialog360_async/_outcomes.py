"""What the bulk sender reports: one Outcome per input, live BulkStats, a final BulkSummary."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs

from ._codes import error_code, failure_reason, failure_title, meaning
from ._models import Message, fast_init
from ._report import FailureCount
from ._results import SentMessage

__all__ = ["BulkStats", "BulkSummary", "Outcome", "Status", "reason_of"]

Status = Literal["sent", "failed", "unknown", "skipped", "cancelled"]


@fast_init  # built for every message handed to the bulk sender
@attrs.frozen(kw_only=True)
class Outcome:
    """What became of one message handed to the bulk sender.

    ``status`` is one of ``"sent"``; ``"failed"`` (the API refused it, or it could not be sent);
    ``"unknown"`` (it may or may not have been delivered: never resent automatically);
    ``"skipped"`` (already sent according to the journal; or, with a :class:`PolicyError`,
    kept from the send by the campaign policy: the recipient is suppressed or deferred, or
    their 24-hour window is closed); ``"cancelled"`` (taken but never attempted: the run was
    cancelled or stopped, its channel was halted by a credential, permission or account failure
    or the spam limit, or its template was halted).
    """

    message: Message
    status: Status
    result: SentMessage | None = None
    error: BaseException | None = None
    attempts: int = 0
    """HTTP attempts made for it in this run (0 when never attempted)."""
    key: str | None = None
    """The journal key, when the run keeps a journal or has a key function."""
    latency: float | None = None
    """Seconds from the first attempt to the answer, retries included."""
    sent_as: Message | None = None
    """The template message sent instead of ``message`` (its window was closed, or the policy's
    fallback after a 131047), if one was."""

    @property
    def ok(self) -> bool:
        """True only for ``"sent"``."""
        return self.status == "sent"


_MAX_REASONS = 64  # distinct (status, reason, code) kept; the rest count as "other"


def reason_of(outcome: Outcome) -> tuple[str, int | None, str]:
    """``(reason, code, meaning)`` of an outcome that is not sent or skipped (see
    :class:`FailureCount` for the reasons)."""
    error = outcome.error
    if error is None:
        return ("interrupted", None, "the run stopped before this message was sent")
    code = error_code(error)
    return (failure_reason(error), code, (meaning(code) or failure_title(error))[:200])


class _Latencies:
    """Constant-memory latency percentiles: log-spaced buckets 1 % wide from 10 µs up."""

    __slots__ = ("_counts", "count")
    _BASE = 1e-5
    _STEP = math.log(1.01)
    _LOG_BASE, _PER_STEP = math.log(_BASE), 1 / _STEP  # add() neither divides nor calls max()

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float) -> None:
        bucket = 0
        if seconds > self._BASE:
            bucket = int((math.log(seconds) - self._LOG_BASE) * self._PER_STEP)
        self._counts[bucket] = self._counts.get(bucket, 0) + 1
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return self._BASE * math.exp((bucket + 0.5) * self._STEP)
        return None  # pragma: no cover - rank never exceeds count


@attrs.define(kw_only=True)
class BulkStats:
    """Live counters of a run; read them from a progress callback or another task."""

    taken: int = 0
    """Inputs consumed from the iterator so far."""
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    cancelled: int = 0
    retries: int = 0
    in_flight: int = 0
    halted: dict[str, str] = attrs.Factory(dict)
    """Channels halted (a credential, permission or account failure, the spam limit):
    channel label -> the error."""
    reasons: dict[tuple[str, str, int | None], list[Any]] = attrs.Factory(dict)
    """``(status, reason, code) -> [meaning, count]`` of the outcomes not sent or skipped."""
    campaign: str | None = None
    """The campaign the run sends (the store's, when it keeps one)."""
    stopped: str | None = None
    """Why the whole run stopped early (its journal could not record a send), if it did."""
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    started: float = attrs.field(default=0.0, repr=False)
    finished: float | None = attrs.field(default=None, repr=False)
    latencies: _Latencies = attrs.field(factory=_Latencies, repr=False)

    @property
    def done(self) -> int:
        """Inputs that have their outcome."""
        return self.sent + self.failed + self.unknown + self.skipped + self.cancelled

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (until it ended)."""
        end = self.finished if self.finished is not None else self.clock()
        return max(0.0, end - self.started)

    @property
    def rate(self) -> float:
        """Messages sent per second so far."""
        elapsed = self.elapsed
        return self.sent / elapsed if elapsed > 0 else 0.0

    def count(self, outcome: Outcome) -> None:
        """Add one outcome."""
        status = outcome.status
        if status == "sent":  # nearly every outcome: no getattr/setattr by name
            self.sent += 1
            if outcome.latency is not None:
                self.latencies.add(outcome.latency)
        else:
            setattr(self, status, getattr(self, status) + 1)
            if status != "skipped" or outcome.error is not None:
                reason, code, words = reason_of(outcome)
                key = (status, reason, code)
                found = self.reasons.get(key)
                if found is None:
                    if len(self.reasons) >= _MAX_REASONS:
                        key, words = (status, "other", None), "other reasons"
                    found = self.reasons.setdefault(key, [words, 0])
                found[1] += 1
        if outcome.attempts > 1:
            self.retries += outcome.attempts - 1

    def summary(self) -> BulkSummary:
        """Freeze the counters into a summary."""
        return BulkSummary(
            total=self.done,
            sent=self.sent,
            failed=self.failed,
            unknown=self.unknown,
            skipped=self.skipped,
            cancelled=self.cancelled,
            retries=self.retries,
            elapsed=self.elapsed,
            rate=self.rate,
            p50_latency=self.latencies.percentile(0.50),
            p99_latency=self.latencies.percentile(0.99),
            halted=tuple(f"{k}: {v}" for k, v in self.halted.items()),
            failures=tuple(
                sorted(
                    (
                        FailureCount(
                            status=status, reason=reason, code=code, meaning=words, count=count
                        )
                        for (status, reason, code), (words, count) in self.reasons.items()
                    ),
                    key=lambda f: (-f.count, f.status, f.reason, f.code or 0),
                )
            ),
            campaign=self.campaign,
            stopped=self.stopped,
        )


@attrs.frozen(kw_only=True)
class BulkSummary:
    """The account of a finished run: every input is in exactly one count."""

    total: int
    sent: int
    failed: int
    unknown: int
    skipped: int
    cancelled: int
    retries: int
    elapsed: float
    """Seconds the run took."""
    rate: float
    """Messages sent per second."""
    p50_latency: float | None
    """Median seconds per sent message (retries included), ±1 %."""
    p99_latency: float | None
    halted: tuple[str, ...] = ()
    """Channels halted (credentials, permission, account, spam limit), with the error."""
    failures: tuple[FailureCount, ...] = ()
    """The failed, unknown and cancelled messages, and those the policy skipped, by reason and
    error code, largest first."""
    campaign: str | None = None
    """The campaign the run sent."""
    stopped: str | None = None
    """Why the run stopped before its input ended (its journal failed), if it did."""

    @property
    def ok(self) -> bool:
        """True when every input was sent (now or, per the journal, before) or skipped by the
        campaign policy (those are in :attr:`failures`, status ``skipped``)."""
        return self.sent + self.skipped == self.total

    def __str__(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f} ms"

        lines = [f"campaign:  {self.campaign}"] if self.campaign is not None else []
        lines += [
            f"messages:  {self.total}",
            f"sent:      {self.sent}",
            f"failed:    {self.failed}",
            f"unknown:   {self.unknown}",
            f"skipped:   {self.skipped}",
            f"cancelled: {self.cancelled}",
            f"retries:   {self.retries}",
            f"elapsed:   {self.elapsed:.2f} s",
            f"rate:      {self.rate:.1f} msg/s",
            f"latency:   p50 {ms(self.p50_latency)}, p99 {ms(self.p99_latency)}",
        ]
        lines += [f"halted:    {reason}" for reason in self.halted]
        lines += [f"reason:    {failure}" for failure in self.failures]
        if self.stopped is not None:
            lines.append(f"stopped:   {self.stopped}")
        return "\n".join(lines)
