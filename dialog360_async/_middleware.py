"""The retry middleware: an aiohttp client middleware with one job, deciding and waiting.

It follows design.md's retry rule for ``POST /messages`` (non-idempotent; WhatsApp has no
idempotency key): retry what provably was not processed (nothing sent, 429 and throttle codes,
502/503), never retry what may have been (read timeout, reset after sending, 500/504) unless
``retry_ambiguous=True``. Idempotent calls retry both. Background:
../shared/docs/reliability-notes.md §0-§2.
"""

from __future__ import annotations

import logging
import time

import aiohttp

from ._error_parser import parse_error
from ._ratelimit import Limiter
from ._retry import RetryBudget, RetryPolicy
from ._transport import exception_phase
from .errors import (
    APIError,
    DeliveryUnknownError,
    PairRateLimitError,
    RateLimitError,
    ServerError,
)

__all__ = ["AttemptReport", "RetryMiddleware"]

logger = logging.getLogger("dialog360_async")

_THROUGHPUT_CODES = frozenset({130429, 80007, 4})  # slow the whole channel down
_PAIR_BACKOFF_CAP = 256.0  # 131056: retry after 4^n s (1, 4, 16, 64, 256)


class AttemptReport:
    """What happened to one request across its attempts, for the bulk sender's accounting."""

    __slots__ = ("attempts", "pair_limited", "started", "started_at")

    def __init__(self) -> None:
        self.attempts = 0
        self.started = False  # an attempt reached the network (a cancel now leaves it unknown)
        self.started_at = 0.0  # time.monotonic() when the first attempt left, after pacing
        self.pair_limited = False


class RetryMiddleware:
    """Retries one request according to a RetryPolicy, sharing a retry budget per client.

    Args:
        policy: attempts, backoff and caps.
        idempotent: whether the request may be repeated safely after an ambiguous failure.
        budget: the client's retry budget; when it runs dry, failures surface at once.
        limiter: paces every attempt (sends only) and slows down on throughput errors.
        report: filled in with the attempts of the one request this instance serves.
    """

    __slots__ = (
        "_budget",
        "_clock",
        "_idempotent",
        "_limiter",
        "_policy",
        "_random",
        "_report",
        "_sleep",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        budget: RetryBudget,
        limiter: Limiter | None = None,
        report: AttemptReport | None = None,
    ) -> None:
        self._report = report
        self._policy = policy
        self._idempotent = idempotent
        self._budget = budget
        self._limiter = limiter
        self._sleep = policy.sleep
        self._random = policy.random
        self._clock = policy.clock

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        # The fast path (a first attempt that succeeds) does as little as possible: every
        # send goes through it. The retry loop lives in _retry.
        started = self._clock() if self._policy.deadline is not None else 0.0
        if self._limiter is not None:
            await self._limiter.acquire()
        if self._report is not None:
            self._report.attempts = 1
            self._report.started = True
            self._report.started_at = time.monotonic()
        try:
            resp = await handler(req)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure: BaseException | None = exc
        else:
            failure = None
        if failure is not None:
            # Outside the except block, so no SDK error raised later chains the aiohttp one.
            return await self._retry(req, handler, started, failure, None)
        if resp.status >= 300:
            return await self._retry(req, handler, started, None, resp)
        self._budget.on_success(0)
        if self._limiter is not None:
            self._limiter.on_success()
        if logger.isEnabledFor(logging.DEBUG):
            _log(f"{req.method} {req.url.path}", 1, resp.status, None, None)
        return resp

    async def _retry(
        self,
        req: aiohttp.ClientRequest,
        handler: aiohttp.ClientHandlerType,
        started: float,
        exc: BaseException | None,
        resp: aiohttp.ClientResponse | None,
    ) -> aiohttp.ClientResponse:
        described = f"{req.method} {req.url.path}"
        taken = 0
        pair_strikes = 0
        ambiguous_before = False  # an earlier attempt may have been processed
        attempt = 1
        while True:
            if exc is None:
                assert resp is not None
                error: APIError | None = None
                if resp.status >= 400:
                    try:
                        # Read once; aiohttp caches the body, so the caller can read it again.
                        body = await resp.read()
                    except (aiohttp.ClientError, TimeoutError) as read_failure:
                        exc = read_failure
                    else:
                        error = parse_error(resp.status, body, resp.headers, described)
            if exc is not None:
                sent, retryable = exception_phase(exc)
                delay = None
                if retryable and (not sent or self._idempotent or self._policy.retry_ambiguous):
                    delay = self._plan(attempt, started, None)
                    delay, taken = self._charge(delay, taken, timeout=isinstance(exc, TimeoutError))
                _log(described, attempt, type(exc).__name__, None, delay)
                if delay is None:
                    if ambiguous_before and not self._idempotent:
                        raise self._unknown(described, None) from None
                    raise exc
                ambiguous_before = ambiguous_before or sent
            else:
                assert resp is not None
                if error is None:  # a success after retries, or a redirect (never followed)
                    if resp.status < 300:
                        self._budget.on_success(taken)
                        if self._limiter is not None:
                            self._limiter.on_success()
                    _log(described, attempt, resp.status, None, None)
                    return resp
                delay, ambiguous = self._decide(error, attempt, started, pair_strikes)
                delay, taken = self._charge(delay, taken)
                if isinstance(error, PairRateLimitError):
                    pair_strikes += 1
                    if self._report is not None:
                        self._report.pair_limited = True
                _log(described, attempt, resp.status, error.code, delay)
                if delay is None:
                    if ambiguous_before and not self._idempotent:
                        resp.release()
                        raise self._unknown(described, error)
                    return resp
                ambiguous_before = ambiguous_before or ambiguous
                resp.release()
            await self._sleep(delay)

            attempt += 1
            if self._limiter is not None:
                await self._limiter.acquire()
            if self._report is not None:
                self._report.attempts = attempt
            exc = resp = None
            try:
                resp = await handler(req)
            except (aiohttp.ClientError, TimeoutError) as failure:
                exc = failure

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
        if deadline is not None and self._clock() - started + delay > deadline:
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

    @staticmethod
    def _unknown(described: str, error: APIError | None) -> DeliveryUnknownError:
        return DeliveryUnknownError(
            "an earlier attempt may have been delivered; delivery unknown",
            request=described,
            cause=error,
        )


def _log(
    described: str, attempt: int, outcome: object, code: int | None, delay: float | None
) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        then = "no retry" if delay is None else f"retry in {delay:.3f} s"
        logger.debug("%s attempt %d -> %s (code %s); %s", described, attempt, outcome, code, then)
