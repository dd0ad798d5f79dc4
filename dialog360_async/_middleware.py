"""The retry middleware: between the transport and its attempts, with one job, deciding and
waiting.

It follows design.md's retry rule for ``POST /messages`` (non-idempotent; WhatsApp has no
idempotency key): retry what provably was not processed (nothing sent, 429 and throttle codes,
502/503), never retry what may have been (read timeout, reset after sending, 500/504) unless
``retry_ambiguous=True``. Idempotent calls retry both. ``RetryPolicy.deadline`` bounds the whole
call: pacing, attempts and sleeps. It raises nothing: it returns the last attempt's
:class:`Reply` or :class:`Failure`, marked ``doubtful`` when an earlier attempt may have been
processed, and the transport raises the SDK error. Background:
../shared/docs/reliability-notes.md §0-§2.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ._attempt import Attempt, Failure, Reply, interrupted
from ._error_parser import parse_error
from ._gate import Gate, waits
from ._ratelimit import Limiter
from ._retry import RetryBudget, RetryPolicy
from .errors import APIError, PairRateLimitError, RateLimitError, ServerError

__all__ = ["AttemptReport", "RetryMiddleware"]

logger = logging.getLogger("dialog360_async")

_THROUGHPUT_CODES = frozenset({130429, 80007, 4})  # slow the whole channel down
_PAIR_BACKOFF_CAP = 256.0  # 131056: retry after 4^n s (1, 4, 16, 64, 256)


class AttemptReport:
    """What happened to one request across its attempts, for the bulk sender's accounting:
    ``attempts`` made; ``started``, an attempt reached the network (a cancel now leaves it
    unknown); ``started_at``, ``time.monotonic()`` when the first attempt left, after pacing;
    ``pair_limited``, a 131056 answered. The bulk sender's Job is one and sets them first."""

    __slots__ = ("attempts", "pair_limited", "started", "started_at")

    attempts: int
    started: bool
    started_at: float
    pair_limited: bool


def _out_of_time() -> Failure:
    return Failure(
        "Deadline",
        "RetryPolicy.deadline passed before the request was sent",
        sent=False,
        retryable=False,
    )


class RetryMiddleware:
    """Retries requests according to a RetryPolicy, sharing a retry budget per client.

    Args:
        policy: attempts, backoff, caps and the deadline.
        idempotent: whether the request may be repeated safely after an ambiguous failure.
        budget: the client's retry budget; when it runs dry, failures surface at once.
        limiter: paces every attempt (sends only) and slows down on throughput errors.
        gate: a bulk run's channel gate: every attempt waits out its pause first and, once
            paced, is not made when the channel has closed.
    """

    __slots__ = (
        "_budget",
        "_clock",
        "_gate",
        "_idempotent",
        "_limiter",
        "_policy",
        "_random",
        "_sleep",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        budget: RetryBudget,
        limiter: Limiter | None = None,
        gate: Gate | None = None,
    ) -> None:
        self._gate = gate
        self._policy = policy
        self._idempotent = idempotent
        self._budget = budget
        self._limiter = limiter
        self._sleep = policy.sleep
        self._random = policy.random
        self._clock = policy.clock

    async def __call__(
        self, attempt: Attempt, described: str, report: AttemptReport | None = None
    ) -> Reply | Failure:
        """Run ``attempt`` until it succeeds or the policy says stop; return the last outcome.
        ``report``, if given, is filled in with the attempts of this one request."""
        # The fast path (a first attempt that succeeds) does as little as possible: every
        # send goes through it. The retry loop lives in _retry.
        gate = self._gate
        if gate is not None and gate.paused():
            await gate.wait()
        if self._policy.deadline is None:
            started = 0.0
            remaining = None
            if self._limiter is not None:
                try:
                    await self._limiter.acquire()
                except asyncio.CancelledError:
                    if not interrupted():
                        raise  # else the client closed: the attempt says so
        else:
            started = self._clock()
            remaining = await self._pace(started)
            if remaining is None:  # the pacing took it all
                return _out_of_time()
        round = 0
        if gate is not None:
            if (closed := gate.check()) is not None:
                return closed
            round = gate.round
        if report is not None:
            report.attempts = 1
            report.started = True
            report.started_at = time.monotonic()
        outcome = await attempt(remaining)
        if type(outcome) is not Reply or outcome.status >= 300:
            return await self._retry(attempt, described, started, outcome, round, report)
        self._budget.on_success(0)
        if self._limiter is not None:
            self._limiter.on_success()
        if logger.isEnabledFor(logging.DEBUG):
            _log(described, 1, outcome.status, None, None)
        return outcome

    async def _retry(
        self,
        attempt: Attempt,
        described: str,
        started: float,
        outcome: Reply | Failure,
        round: int,
        report: AttemptReport | None,
    ) -> Reply | Failure:
        # With a gate (a bulk run), what waits (throttled, nothing sent) is the channel's
        # trouble: the channel's shared pause is the backoff, and it costs no attempt from the
        # policy and nothing from the budget; the gate ends it after outage_timeout.
        gate = self._gate
        taken = 0
        pair_strikes = 0
        doubtful = False  # an earlier attempt may have been processed
        number = 1
        while True:
            if type(outcome) is Failure:
                delay = None
                if gate is not None and outcome.retryable and not outcome.sent:
                    delay = 0.0 if gate.failed(outcome.reason, None, round) else None
                elif outcome.retryable and (
                    not outcome.sent or self._idempotent or self._policy.retry_ambiguous
                ):
                    delay = self._plan(number, started, None)
                    delay, taken = self._charge(delay, taken, timeout=outcome.timeout)
                _log(described, number, outcome.kind, None, delay)
                ambiguous = outcome.sent
            else:
                assert type(outcome) is Reply
                if outcome.status < 400:  # a success after retries, or a redirect (never followed)
                    if outcome.status < 300:
                        self._budget.on_success(taken)
                        if self._limiter is not None:
                            self._limiter.on_success()
                    _log(described, number, outcome.status, None, None)
                    outcome.doubtful = doubtful
                    return outcome
                error = outcome.error = parse_error(
                    outcome.status, outcome.body, outcome.headers, described
                )
                if gate is not None and waits(error):
                    if self._limiter is not None and error.code in _THROUGHPUT_CODES:
                        self._limiter.slow_down()
                    retry_after = getattr(error, "retry_after", None)
                    delay = 0.0 if gate.failed(error, retry_after, round) else None
                    ambiguous = False
                else:
                    delay, ambiguous = self._decide(error, number, started, pair_strikes)
                    delay, taken = self._charge(delay, taken)
                if isinstance(error, PairRateLimitError):
                    pair_strikes += 1
                    if report is not None:
                        report.pair_limited = True
                _log(described, number, outcome.status, error.code, delay)
            if delay is None:
                outcome.doubtful = doubtful
                return outcome
            doubtful = doubtful or ambiguous
            try:
                await self._sleep(delay)
                if gate is not None:
                    await gate.wait()
                if self._policy.deadline is None and self._limiter is not None:
                    await self._limiter.acquire()
            except asyncio.CancelledError:
                if not interrupted():
                    raise  # else the client closed: the next attempt says so

            number += 1
            remaining = None
            if self._policy.deadline is not None:
                remaining = await self._pace(started)
                if remaining is None:  # the waits took what was left: the last outcome stands
                    outcome.doubtful = doubtful
                    return outcome
            if gate is not None:
                if (closed := gate.check()) is not None:
                    closed.doubtful = doubtful
                    return closed
                round = gate.round
            if report is not None:
                report.attempts = number
            outcome = await attempt(remaining)

    async def _pace(self, started: float) -> float | None:
        """Wait for the limiter within the deadline; the seconds left, None if none are."""
        deadline = self._policy.deadline
        assert deadline is not None
        if self._limiter is not None:
            try:
                # Limiters are cancellation-safe: a waiter cancelled before its permit takes none.
                async with asyncio.timeout(deadline - (self._clock() - started)):
                    await self._limiter.acquire()
            except TimeoutError:
                return None
            except asyncio.CancelledError:
                if not interrupted():
                    raise  # else the client closed: the attempt says so
        remaining = deadline - (self._clock() - started)
        return remaining if remaining > 0 else None

    def _decide(
        self, error: APIError, attempt: int, started: float, pair_strikes: int
    ) -> tuple[float | None, bool]:
        """``(delay or None to stop, whether this attempt may have been processed)``."""
        if isinstance(error, PairRateLimitError):
            # Meta: retry only this recipient, after 4^n seconds.
            wait = min(4.0**pair_strikes, _PAIR_BACKOFF_CAP, self._policy.max_retry_after)
            return self._plan(attempt, started, max(wait, error.retry_after or 0.0)), False
        if isinstance(error, RateLimitError):
            if self._limiter is not None and error.code in _THROUGHPUT_CODES:
                self._limiter.slow_down()
            return self._plan(attempt, started, error.retry_after), False
        if isinstance(error, ServerError):
            if error.ambiguous and not (self._idempotent or self._policy.retry_ambiguous):
                return None, True
            return self._plan(attempt, started, None), error.ambiguous
        return None, False

    def _plan(self, attempt: int, started: float, retry_after: float | None) -> float | None:
        policy = self._policy
        if attempt >= policy.max_attempts:
            return None
        delay = policy.delay(attempt - 1, retry_after, self._random)
        deadline = policy.deadline
        if deadline is not None and self._clock() - started + delay >= deadline:
            return None
        return delay

    def _charge(
        self, delay: float | None, taken: int, *, timeout: bool = False
    ) -> tuple[float | None, int]:
        """Pay for a planned retry from the shared budget; an empty budget cancels it."""
        if delay is None:
            return None, taken
        cost = self._budget.acquire(timeout=timeout)
        if cost is None:
            if not self._budget.warned:
                self._budget.warned = True
                logger.warning(
                    "retry budget exhausted (%d of %d left): failing fast instead of retrying",
                    self._budget.available,
                    self._budget.capacity,
                )
            return None, taken
        return delay, taken + cost


def _log(
    described: str, attempt: int, outcome: object, code: int | None, delay: float | None
) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        then = "no retry" if delay is None else f"retry in {delay:.3f} s"
        logger.debug("%s attempt %d -> %s (code %s); %s", described, attempt, outcome, code, then)
