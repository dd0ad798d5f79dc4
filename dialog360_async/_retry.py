"""Retry policy: backoff, server pushback, a shared retry budget and per-recipient pair backoff.

Pure policy with injectable ``random``/``now``/``clock``; the HTTP middleware that applies it lives
elsewhere. Background: ../shared/docs/reliability-notes.md §0-§1 and design.md "Retry rule".
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import random as _random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from . import _validation as v
from .errors import ValidationError

__all__ = ["PairBackoff", "RetryBudget", "RetryPolicy", "parse_retry_after"]

# 2.0**1000 is finite, so base * 2**n can at worst become inf (never raise); min() then caps it.
# openai-python caps its exponent at 1000 for the same reason.
_MAX_EXPONENT = 1000


def _field(inst: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def _duration(field: str, value: object) -> float:
    seconds = v.finite(value, field, "number of seconds")
    if seconds < 0:
        raise ValidationError(field, f"must be a finite number >= 0, got {v.shown(value)}")
    return seconds


def _number(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _duration(_field(inst, attribute), value)


def _attempts(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _count(_field(inst, attribute), value, 1)


def _deadline(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and _duration(_field(inst, attribute), value) <= 0:
        raise ValidationError(
            _field(inst, attribute), f"must be > 0 seconds or None, got {v.shown(value)}"
        )


def _flag(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    v.flag(value, _field(inst, attribute))


def _callable(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    v.function(value, _field(inst, attribute))


def _count(field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(field, f"must be an integer >= {minimum}, got {v.shown(value)}")


def _unit(random: Callable[[], float]) -> float:
    r = random()
    # A misbehaving injected source must not produce a negative, NaN or over-cap delay.
    return min(r, 1.0) if r >= 0.0 else 0.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long to retry a failed request.

    ``RetryPolicy()`` retries up to 4 times (5 attempts) with full-jitter backoff.
    """

    max_attempts: int = attrs.field(default=5, validator=_attempts)
    """Total attempts including the first; 1 disables retries."""
    base_delay: float = attrs.field(default=0.5, validator=_number)
    """Backoff ceiling of the first retry, in seconds; doubles per retry."""
    max_delay: float = attrs.field(default=30.0, validator=_number)
    """Upper bound of a computed backoff, in seconds."""
    max_retry_after: float = attrs.field(default=120.0, validator=_number)
    """Server-requested waits (``Retry-After``) are clamped to this many seconds."""
    retry_ambiguous: bool = attrs.field(default=False, validator=_flag)
    """Also retry sends that may have reached the server (risking a duplicate message)."""
    deadline: float | None = attrs.field(default=None, validator=_deadline)
    """Seconds allowed across all attempts and sleeps; None means no overall bound."""
    sleep: Callable[[float], Awaitable[None]] = attrs.field(
        default=asyncio.sleep, validator=_callable, repr=False, eq=False
    )
    """Coroutine function that waits between attempts; inject a fake in tests."""
    clock: Callable[[], float] = attrs.field(
        default=time.monotonic, validator=_callable, repr=False, eq=False
    )
    """Monotonic seconds, for the deadline; inject a fake in tests."""
    random: Callable[[], float] = attrs.field(
        default=_random.random, validator=_callable, repr=False, eq=False
    )
    """Uniform numbers in [0, 1] for the jitter; inject a fixed one in tests."""

    def backoff(self, attempt: int, random: Callable[[], float] = _random.random) -> float:
        """Full-jitter backoff: ``random() * min(max_delay, base_delay * 2**attempt)``.

        Args:
            attempt: failures so far minus one (0 for the first retry); negatives count as 0.
            random: source of uniform numbers in [0, 1]; injectable for tests.

        Returns:
            A finite delay in seconds, ``0 <= delay <= max_delay``.
        """
        # AWS "Exponential Backoff And Jitter": full jitter does the least total work.
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return _unit(random) * ceiling

    def delay(
        self,
        attempt: int,
        retry_after: float | None,
        random: Callable[[], float] = _random.random,
    ) -> float:
        """Seconds to sleep before the next attempt.

        A server-requested ``retry_after`` is a floor (clamped to ``max_retry_after``) under
        the jittered backoff, as in urllib3 and stripe-python.

        Args:
            attempt: failures so far minus one (0 for the first retry).
            retry_after: the parsed ``Retry-After`` in seconds, or None.
            random: source of uniform numbers in [0, 1]; injectable for tests.

        Returns:
            A finite delay, ``0 <= delay <= max(max_delay, max_retry_after)``.
        """
        backoff = self.backoff(attempt, random)
        if retry_after is None or math.isnan(retry_after):
            return backoff
        floor = min(max(retry_after, 0.0), self.max_retry_after)
        return min(max(floor, backoff), max(self.max_delay, self.max_retry_after))


# RFC 9110 §10.2.3 allows only integer seconds; floats are accepted as openai-python does.
# ASCII only: float() would also take "1_0", "inf" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_MAX_HEADER_LEN = 256  # far longer than any HTTP-date; bounds the work spent on junk


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # case-insensitive already for a CIMultiDict
    if value is None:
        for key, item in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = item
                break
    return value if isinstance(value, str) else None


def _seconds(text: str, scale: float) -> float | None:
    text = text.strip()
    if len(text) > _MAX_HEADER_LEN or not _DECIMAL.fullmatch(text):
        return None
    value = float(text) * scale
    if not math.isfinite(value):
        return None  # "1e400" overflows to inf: treat as unparseable, not as "wait forever"
    return max(value, 0.0)


def _http_date(text: str, now: Callable[[], float]) -> float | None:
    if len(text) > _MAX_HEADER_LEN:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(text)
        if moment.tzinfo is None:
            # "-0000" yields a naive datetime; HTTP-dates are always GMT (RFC 9110 §5.6.7).
            moment = moment.replace(tzinfo=datetime.UTC)
        value = moment.timestamp() - now()
    except Exception:
        # The stdlib date parser raises assorted errors (ValueError, TypeError, IndexError,
        # OverflowError) on junk; a bad header must fall back to backoff, never crash a send.
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Read the server's requested wait from response headers.

    Tries ``retry-after-ms`` (milliseconds), then ``retry-after`` as seconds, then as an
    HTTP-date relative to ``now()``. Names are matched case-insensitively.

    Args:
        headers: response headers (a ``CIMultiDict`` or any mapping).
        now: wall-clock time in epoch seconds; injectable for tests.

    Returns:
        Seconds to wait (>= 0, finite; a past date gives 0.0), or None when absent or invalid.
        Huge values are returned as is: clamping is the caller's policy. Never raises.
    """
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        value = _seconds(ms, 0.001)
        if value is not None:
            return value
    text = _header(headers, "retry-after")
    if text is None:
        return None
    value = _seconds(text, 1.0)
    return value if value is not None else _http_date(text, now)


class RetryBudget:
    """A retry quota shared by all requests of one client (botocore's ``RetryQuota``).

    During an outage the quota runs dry and further failures surface at once instead of
    multiplying the load. Not thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        capacity: int = 500,
        *,
        retry_cost: int = 5,
        timeout_cost: int = 10,
        no_retry_refund: int = 1,
    ) -> None:
        """Create a full budget.

        Args:
            capacity: the most the budget holds.
            retry_cost: taken by each retry.
            timeout_cost: taken by a retry that follows a timeout.
            no_retry_refund: given back by a success that needed no retry.
        """
        _count("RetryBudget.capacity", capacity, 0)
        _count("RetryBudget.retry_cost", retry_cost, 0)
        _count("RetryBudget.timeout_cost", timeout_cost, 0)
        _count("RetryBudget.no_retry_refund", no_retry_refund, 0)
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.no_retry_refund = no_retry_refund
        self._available = capacity
        # Set by the first caller that finds it empty; reset once it is full again, so that a
        # flapping outage (drained, a refund, drained again) warns once, not at every drain.
        self.warned = False

    def acquire(self, *, timeout: bool = False) -> int | None:
        """Pay for one retry.

        Args:
            timeout: the failure was a timeout (botocore charges double for those).

        Returns:
            The amount taken, or None if the budget cannot pay (then do not retry).
        """
        cost = self.timeout_cost if timeout else self.retry_cost
        if cost > self._available:
            return None
        self._available -= cost
        return cost

    def release(self, amount: int) -> None:
        """Give ``amount`` back, never above capacity."""
        self._available = min(self.capacity, self._available + max(amount, 0))
        if self._available >= self.capacity:
            self.warned = False

    def on_success(self, taken: int = 0) -> None:
        """Refund after a success: what its retries took, or ``no_retry_refund`` if none.

        Failures refund nothing (botocore ``quota.py``).
        """
        self.release(taken if taken > 0 else self.no_retry_refund)

    @property
    def available(self) -> int:
        """What the budget holds now."""
        return self._available

    @property
    def exhausted(self) -> bool:
        """True when not even a normal retry can be paid for."""
        return self._available < self.retry_cost

    def __repr__(self) -> str:
        return f"RetryBudget(available={self._available}, capacity={self.capacity})"


class PairBackoff:
    """Per-recipient waits for WhatsApp error 131056 (pair rate limit).

    Only the affected recipient waits: 4**n seconds after its n-th consecutive 131056
    (1, 4, 16, 64, ... capped), as 360dialog advises; other recipients are unaffected
    (Meta: "you can still send messages to a different phone number"). Memory is bounded by
    an LRU of ``max_entries`` recipients.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        cap: float = 256.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty tracker.

        Args:
            max_entries: recipients remembered at most; the least recently penalized go first.
            cap: the longest wait in seconds.
            clock: monotonic seconds; injectable for tests.
        """
        _count("PairBackoff.max_entries", max_entries, 1)
        self.max_entries = max_entries
        self.cap = _duration("PairBackoff.cap", cap)
        self._clock = v.function(clock, "PairBackoff.clock")
        # recipient -> (131056 strikes so far, monotonic time it may be sent to again)
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def penalize(self, recipient: str) -> float:
        """Record another 131056 for ``recipient``.

        Returns:
            Seconds that recipient must now wait.
        """
        strikes, _ = self._entries.pop(recipient, (0, 0.0))
        # 4.0**n raises OverflowError past n = 511; 4.0**500 already exceeds any usable cap.
        wait = min(self.cap, 4.0 ** min(strikes, 500))
        self._entries[recipient] = (strikes + 1, self._clock() + wait)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return wait

    def wait_time(self, recipient: str) -> float:
        """Seconds until ``recipient`` may be sent to again (0.0 if free now)."""
        entry = self._entries.get(recipient)
        if entry is None:
            return 0.0
        return max(entry[1] - self._clock(), 0.0)

    def clear(self, recipient: str) -> None:
        """Forget ``recipient`` after a successful send, so its next 131056 starts at 1 s."""
        self._entries.pop(recipient, None)

    def __len__(self) -> int:
        return len(self._entries)
