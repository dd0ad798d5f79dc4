"""RetryPolicy backoff, Retry-After parsing, RetryBudget and PairBackoff (pure, no I/O)."""

from __future__ import annotations

import email.utils
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialog360_async._retry import PairBackoff, RetryBudget, RetryPolicy, parse_retry_after
from dialog360_async.errors import ValidationError

NOW = 1_700_000_000.0  # fixed "wall clock" for HTTP-date cases


def fixed_now() -> float:
    return NOW


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


# ---------------------------------------------------------------------------------------------
# parse_retry_after, in the style of openai-python's test_parse_retry_after_header


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "+3"}, 3.0),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "-0.5"}, 0.0),
        ({"retry-after": "1e3"}, 1000.0),
        ({"retry-after": "9" * 35}, 1e35),  # finite: returned as is, RetryPolicy clamps it
        ({"retry-after": "1e400"}, None),  # overflows to inf
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "Infinity"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "abc"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "1_000"}, None),  # float() would accept this; RFC 9110 does not
        ({"retry-after": "\u0663"}, None),  # Arabic-Indic digit three
        ({"retry-after": "12 seconds"}, None),
        ({"retry-after": http_date(30)}, 30.0),
        ({"retry-after": http_date(3600)}, 3600.0),
        ({"retry-after": http_date(-30)}, 0.0),  # a date in the past: go now
        ({"retry-after": "Fri, 29 Sep 2023 16:26:57 -0000"}, 0.0),  # naive date, long past
        ({"retry-after": "Fri, 32 Sep 2023 16:26:57 GMT"}, None),
        ({"retry-after": "Fri, 29 Sep 99999 16:26:57 GMT"}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "0.5"}, 0.0005),
        ({"retry-after-ms": "-10"}, 0.0),
        ({"retry-after-ms": "1e400"}, None),
        ({"retry-after-ms": "250", "retry-after": "60"}, 0.25),  # -ms wins
        ({"retry-after-ms": "junk", "retry-after": "60"}, 60.0),  # bad -ms falls through
        ({"Retry-After": "60"}, 60.0),
        ({"RETRY-AFTER": "2"}, 2.0),
        ({"Retry-After-Ms": "100", "RETRY-AFTER": "60"}, 0.1),
        ({"x-other": "1"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after(headers, now=fixed_now)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_cimultidict() -> None:
    multidict = pytest.importorskip("multidict")
    headers = multidict.CIMultiDict({"Retry-After": "12"})
    assert parse_retry_after(headers, now=fixed_now) == 12.0


def test_parse_retry_after_ignores_non_string_values() -> None:
    headers: Any = {"retry-after": 5, "retry-after-ms": None}
    assert parse_retry_after(headers, now=fixed_now) is None


@given(st.text(), st.text())
def test_parse_retry_after_never_raises(retry_after: str, retry_after_ms: str) -> None:
    for headers in ({"retry-after": retry_after}, {"Retry-After-Ms": retry_after_ms}):
        got = parse_retry_after(headers, now=fixed_now)
        assert got is None or (math.isfinite(got) and got >= 0)


@given(st.datetimes(timezones=st.timezones()).map(email.utils.format_datetime))
def test_parse_retry_after_any_http_date(text: str) -> None:
    got = parse_retry_after({"retry-after": text}, now=fixed_now)
    assert got is None or (math.isfinite(got) and got >= 0)


# ---------------------------------------------------------------------------------------------
# RetryPolicy


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (5, 0.5, 30.0)
    assert (policy.max_retry_after, policy.retry_ambiguous, policy.deadline) == (120.0, False, None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "RetryPolicy.max_attempts"),
        ({"max_attempts": -1}, "RetryPolicy.max_attempts"),
        ({"max_attempts": 2.0}, "RetryPolicy.max_attempts"),
        ({"max_attempts": True}, "RetryPolicy.max_attempts"),
        ({"base_delay": -0.1}, "RetryPolicy.base_delay"),
        ({"base_delay": math.nan}, "RetryPolicy.base_delay"),
        ({"base_delay": "1"}, "RetryPolicy.base_delay"),
        ({"max_delay": math.inf}, "RetryPolicy.max_delay"),
        ({"max_delay": -1}, "RetryPolicy.max_delay"),
        ({"max_retry_after": -1}, "RetryPolicy.max_retry_after"),
        ({"retry_ambiguous": 1}, "RetryPolicy.retry_ambiguous"),
        ({"deadline": 0}, "RetryPolicy.deadline"),
        ({"deadline": -3.0}, "RetryPolicy.deadline"),
        ({"deadline": math.inf}, "RetryPolicy.deadline"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_policy_is_frozen_and_accepts_ints() -> None:
    policy = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, deadline=10)
    assert policy.backoff(3, lambda: 0.9) == 0.0
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (60, 30.0), (10**9, 30.0), (-4, 0.5)],
)
def test_backoff_ceiling_doubles_then_caps(attempt: int, expected: float) -> None:
    assert RetryPolicy().backoff(attempt, lambda: 1.0) == expected


def test_backoff_is_full_jitter() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    assert policy.backoff(2, lambda: 0.0) == 0.0
    assert policy.backoff(2, lambda: 0.25) == 1.0
    assert policy.backoff(10, lambda: 0.5) == 4.0


@pytest.mark.parametrize("bad", [-1.0, 2.0, math.nan, math.inf])
def test_backoff_survives_a_broken_random(bad: float) -> None:
    assert 0.0 <= RetryPolicy().backoff(3, lambda: bad) <= 30.0


@pytest.mark.parametrize(
    ("retry_after", "jitter", "expected"),
    [
        (None, 0.5, 0.25),  # no pushback: plain backoff (attempt 0: ceiling 0.5)
        (10.0, 0.5, 10.0),  # pushback is a floor above the backoff
        (0.1, 1.0, 0.5),  # backoff wins when larger
        (500.0, 0.0, 120.0),  # clamped to max_retry_after
        (math.inf, 0.0, 120.0),
        (-5.0, 0.5, 0.25),  # negative counts as 0
        (math.nan, 0.5, 0.25),  # nan ignored
    ],
)
def test_delay(retry_after: float | None, jitter: float, expected: float) -> None:
    assert RetryPolicy().delay(0, retry_after, lambda: jitter) == pytest.approx(expected)


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_delay=st.floats(0, 1e6, allow_nan=False),
    max_delay=st.floats(0, 1e300, allow_nan=False),
    max_retry_after=st.floats(0, 1e300, allow_nan=False),
    deadline=st.none() | st.floats(1e-3, 1e6),
)
unit = st.floats(0, 1)


@given(policies, st.integers(-10, 10**9), unit)
def test_backoff_bounded(policy: RetryPolicy, attempt: int, r: float) -> None:
    d = policy.backoff(attempt, lambda: r)
    assert math.isfinite(d)
    assert 0.0 <= d <= policy.max_delay


@given(policies, st.integers(0, 10**9), st.none() | st.floats(), unit)
def test_delay_bounded(policy: RetryPolicy, attempt: int, ra: float | None, r: float) -> None:
    d = policy.delay(attempt, ra, lambda: r)
    assert math.isfinite(d)
    assert 0.0 <= d <= max(policy.max_delay, policy.max_retry_after)
    if ra is not None and ra >= 0:
        assert d >= min(ra, policy.max_retry_after)  # pushback is honoured as a floor


# ---------------------------------------------------------------------------------------------
# RetryBudget (botocore quota semantics)


def test_budget_exhausts_after_capacity_over_cost() -> None:
    budget = RetryBudget()
    taken = [budget.acquire() for _ in range(100)]
    assert taken == [5] * 100
    assert budget.available == 0
    assert budget.exhausted
    assert budget.acquire() is None
    assert budget.acquire(timeout=True) is None
    assert budget.available == 0  # a refused acquire takes nothing


def test_budget_timeouts_cost_double() -> None:
    budget = RetryBudget(capacity=25)
    assert budget.acquire(timeout=True) == 10
    assert budget.acquire(timeout=True) == 10
    assert budget.acquire(timeout=True) is None  # 5 left: too little for a timeout retry...
    assert budget.acquire() == 5  # ...but enough for a normal one
    assert budget.available == 0


@pytest.mark.parametrize(
    ("steps", "available"),
    [
        ([("acquire", 0)], 495),
        ([("acquire", 0), ("success", 5)], 500),  # success after retries refunds what they took
        ([("acquire", 0), ("acquire", 1), ("success", 15)], 500),
        ([("acquire", 0), ("acquire", 0), ("fail", 0)], 490),  # failures refund nothing
        ([("acquire", 0), ("success", 0)], 496),  # success without retries refunds 1
        ([("success", 0)] * 3, 500),  # never above capacity
        ([("release", 10**9)], 500),
        ([("acquire", 0), ("release", -7)], 495),  # negative release ignored
    ],
)
def test_budget_accounting(steps: list[tuple[str, int]], available: int) -> None:
    budget = RetryBudget()
    for op, arg in steps:
        if op == "acquire":
            assert budget.acquire(timeout=bool(arg)) is not None
        elif op == "success":
            budget.on_success(arg)
        elif op == "release":
            budget.release(arg)
    assert budget.available == available


@given(st.lists(st.tuples(st.sampled_from(["a", "t", "s", "r"]), st.integers(-50, 50))))
def test_budget_stays_within_bounds(ops: list[tuple[str, int]]) -> None:
    budget = RetryBudget(capacity=50)
    for op, n in ops:
        if op == "a":
            budget.acquire()
        elif op == "t":
            budget.acquire(timeout=True)
        elif op == "s":
            budget.on_success(n)
        else:
            budget.release(n)
        assert 0 <= budget.available <= budget.capacity
        assert budget.exhausted == (budget.available < budget.retry_cost)


@pytest.mark.parametrize(
    "kwargs", [{"capacity": -1}, {"retry_cost": -5}, {"timeout_cost": 1.5}, {"capacity": True}]
)
def test_budget_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryBudget(**kwargs)


def test_budget_custom_costs_and_repr() -> None:
    budget = RetryBudget(10, retry_cost=3, timeout_cost=4, no_retry_refund=2)
    assert [budget.acquire(), budget.acquire(timeout=True), budget.acquire()] == [3, 4, 3]
    assert budget.exhausted
    budget.on_success()
    assert budget.available == 2
    assert repr(budget) == "RetryBudget(available=2, capacity=10)"


# ---------------------------------------------------------------------------------------------
# PairBackoff (WhatsApp 131056)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pair_backoff_sequence_and_wait_time() -> None:
    clock = Clock()
    pairs = PairBackoff(clock=clock)
    assert pairs.wait_time("4915") == 0.0
    assert [pairs.penalize("4915") for _ in range(4)] == [1.0, 4.0, 16.0, 64.0]
    assert pairs.wait_time("4915") == 64.0
    clock.now += 60
    assert pairs.wait_time("4915") == pytest.approx(4.0)
    clock.now += 10
    assert pairs.wait_time("4915") == 0.0
    assert pairs.wait_time("other") == 0.0  # other recipients are unaffected
    assert pairs.penalize("4915") == 256.0  # strikes persist until a success clears them


def test_pair_backoff_cap_and_huge_strike_counts() -> None:
    pairs = PairBackoff(cap=20.0, clock=Clock())
    assert [pairs.penalize("a") for _ in range(4)] == [1.0, 4.0, 16.0, 20.0]
    for _ in range(2000):
        assert pairs.penalize("a") == 20.0  # 4**n must never overflow


def test_pair_backoff_clear() -> None:
    pairs = PairBackoff(clock=Clock())
    pairs.penalize("a")
    pairs.penalize("a")
    pairs.clear("a")
    pairs.clear("never-seen")
    assert pairs.wait_time("a") == 0.0
    assert pairs.penalize("a") == 1.0


def test_pair_backoff_lru_bound() -> None:
    pairs = PairBackoff(max_entries=3, clock=Clock())
    for r in ("a", "b", "c"):
        pairs.penalize(r)
    pairs.penalize("a")  # refreshes "a"; "b" is now the least recently penalized
    pairs.penalize("d")
    assert len(pairs) == 3
    assert pairs.wait_time("b") == 0.0
    assert pairs.wait_time("a") == 4.0
    assert pairs.penalize("b") == 1.0  # forgotten, so it starts over


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_entries": 0}, "PairBackoff.max_entries"),
        ({"max_entries": 2.5}, "PairBackoff.max_entries"),
        ({"cap": -1.0}, "PairBackoff.cap"),
        ({"cap": math.inf}, "PairBackoff.cap"),
        ({"cap": math.nan}, "PairBackoff.cap"),
    ],
)
def test_pair_backoff_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        PairBackoff(**kwargs)
    assert info.value.field == field
