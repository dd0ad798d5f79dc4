"""BulkSender against the bundled fake: exactly one outcome per input, bounded concurrency,
no duplicate sends, cancellation and spam-limit accounting."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dialog360_async import (
    BulkSender,
    Contact,
    ContactsMessage,
    Dialog360Client,
    Location,
    LocationMessage,
    Name,
    Outcome,
    RateLimiter,
    RetryPolicy,
    SpamRateLimitError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

HQ = Location(latitude=1, longitude=2)
CARD = Contact(name=Name(formatted_name="Ada Lovelace", first_name="Ada"))


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


FAST = RetryPolicy(sleep=no_sleep)


def number(n: int) -> str:
    return f"+1650{n:07d}"


def messages(count: int, start: int = 0) -> Iterator[LocationMessage | ContactsMessage]:
    for n in range(start, start + count):
        if n % 2:
            yield ContactsMessage(to=number(n), contacts=[CARD])
        else:
            yield LocationMessage(to=number(n), location=HQ)


def meta(code: int) -> dict[str, Any]:
    return {"error": {"message": f"(#{code}) x", "type": "OAuthException", "code": code}}


async def test_10k_with_1_percent_faults_one_outcome_each() -> None:
    total, concurrency = 10_000, 16
    # ~1 % faults; the recipient faults start after the first 33 requests, which get the 500s
    permanent = [number(n) for n in range(1000, 10_000, 300)]  # 30 recipients: 131026
    retryable = [number(n) for n in range(1100, 10_000, 300)]  # 30: a 130429 once, then fine
    async with FakeDialog360(throughput=None, record_requests=False, latency=0.001) as fake:
        for to in permanent:
            fake.fail_recipient(to, code=131026)
        for to in retryable:
            fake.fail_recipient(to, code=130429, status=429, times=1)
        # 33 ambiguous answers: processed by the server, then a 500 to the client
        fake.script("POST", "/messages", *[FakeResponse(status=500, process=True)] * 33)
        seen: Counter[str] = Counter()
        async with Dialog360Client("k", base_url=fake.url, retry=FAST, rate_limit=None) as client:
            sender = BulkSender(client, concurrency=concurrency, rate_limit=None)
            async for outcome in sender.run(messages(total)):
                seen[outcome.message.to] += 1
            summary = sender.stats.summary()
    print(
        f"\n10k run: {summary!s}\nmax in flight at the server: {fake.max_in_flight}, "
        f"duplicates: {len(fake.duplicates())}"
    )
    assert len(seen) == total and set(seen.values()) == {1}
    assert fake.max_in_flight <= concurrency
    assert fake.duplicates() == {}
    assert summary.total == total
    assert summary.failed == len(permanent)
    assert summary.unknown == 33  # ambiguous 500 on a send: never retried by default
    assert summary.sent == total - len(permanent) - 33
    assert summary.retries == len(retryable)
    assert summary.cancelled == summary.skipped == 0
    assert sum(fake.sends.values()) == summary.sent + summary.unknown
    assert sender.stats.taken == total


async def test_send_all_async_iterable_and_summary() -> None:
    async def source() -> AsyncIterator[LocationMessage | ContactsMessage]:
        for message in messages(50):
            yield message

    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        summary = await BulkSender(c, rate_limit=None).send_all(source())
    assert (summary.total, summary.sent) == (50, 50)
    assert summary.ok
    assert summary.p50_latency is not None and summary.p99_latency is not None
    assert summary.p50_latency <= summary.p99_latency
    assert "sent:      50" in str(summary)


@pytest.mark.parametrize("grace", [10.0, 0.0])
async def test_cancellation_accounts_for_every_consumed_input(grace: float) -> None:
    total, concurrency = 2000, 16
    outcomes: list[Outcome] = []
    halfway = asyncio.Event()

    def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) >= total // 2:
            halfway.set()

    async with FakeDialog360(throughput=None, record_requests=False, latency=0.002) as fake:
        async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
            sender = BulkSender(
                client, concurrency=concurrency, rate_limit=None, grace=grace, on_outcome=collect
            )
            task = asyncio.create_task(sender.send_all(messages(total)))
            await asyncio.wait_for(halfway.wait(), timeout=60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    stats = sender.stats
    keys = Counter(o.message.to for o in outcomes)
    assert set(keys.values()) == {1}  # one outcome per input
    assert len(outcomes) == stats.taken == stats.done  # every consumed input accounted for
    assert total // 2 <= stats.taken < total  # intake stopped
    assert stats.unknown <= concurrency
    assert stats.cancelled <= concurrency  # workers read no further ahead than their own input
    if grace:
        assert stats.unknown == 0  # in-flight sends were allowed to finish
    assert sum(fake.sends.values()) <= stats.sent + stats.unknown
    assert fake.duplicates() == {}


async def test_breaking_out_of_run_stops_intake() -> None:
    outcomes: list[Outcome] = []
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, concurrency=4, rate_limit=None, on_outcome=outcomes.append)
        async with contextlib.aclosing(sender.run(messages(1000))) as run:
            async for outcome in run:
                if outcome.ok:
                    break
    assert sender.stats.taken < 1000
    assert len(outcomes) == sender.stats.taken == sender.stats.done


async def test_spam_limit_halts_only_that_channel() -> None:
    async with FakeDialog360(throughput=None) as fake:
        fake.fail_recipient(number(0), code=131048)
        async with (
            Dialog360Client("a", base_url=fake.url, retry=FAST, rate_limit=None) as a,
            Dialog360Client("b", base_url=fake.url, retry=FAST, rate_limit=None) as b,
        ):
            items = [(a, m) for m in messages(200)] + [(b, m) for m in messages(200, 1000)]
            outcomes = [o async for o in BulkSender(concurrency=1, rate_limit=None).run(items)]
    by_status = Counter(o.status for o in outcomes)
    assert by_status["failed"] == 1
    assert by_status["cancelled"] == 199  # channel a's inputs not yet attempted
    assert by_status["sent"] == 200  # channel b went on
    cancelled = [o for o in outcomes if o.status == "cancelled"]
    assert all(isinstance(o.error, SpamRateLimitError) for o in cancelled)


async def test_multi_channel_each_with_its_own_limiter() -> None:
    async with FakeDialog360(throughput=None) as fake:
        clients = [
            Dialog360Client(f"key-{i}", base_url=fake.url, rate_limit=None) for i in range(3)
        ]
        items = [(clients[n % 3], m) for n, m in enumerate(messages(90))]
        sender = BulkSender(concurrency=8, rate_limit=1000.0)
        summary = await sender.send_all(items)
        limiters = {id(ch.limiter) for ch in sender._channels.values()}
        for client in clients:
            await client.close()
    assert summary.sent == 90
    assert len(limiters) == 3
    assert Counter(r.channel for r in fake.requests) == {
        "channel-1": 30,
        "channel-2": 30,
        "channel-3": 30,
    }


async def test_bad_items_are_failed_outcomes_not_crashes() -> None:
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        items: list[Any] = [next(messages(1)), {"to": "x"}, "nope"]
        outcomes = [o async for o in BulkSender(c, rate_limit=None).run(items)]
        no_client = [o async for o in BulkSender(rate_limit=None).run(messages(1))]
    assert Counter(o.status for o in outcomes) == {"sent": 1, "failed": 2}
    assert all(isinstance(o.error, ValidationError) for o in outcomes if not o.ok)
    assert no_client[0].status == "failed"


async def test_iterator_error_finishes_taken_inputs_then_raises() -> None:
    def broken() -> Iterator[LocationMessage | ContactsMessage]:
        yield from messages(10)
        raise RuntimeError("input file vanished")

    outcomes: list[Outcome] = []
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, rate_limit=None, on_outcome=outcomes.append)
        with pytest.raises(RuntimeError, match="vanished"):
            await sender.send_all(broken())
    assert len(outcomes) == 10 and all(o.ok for o in outcomes)


async def test_pair_limit_spaces_that_recipient(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    async with FakeDialog360(throughput=None) as fake:
        fake.fail_recipient(number(0), code=131056, times=1)
        async with Dialog360Client(
            "k", base_url=fake.url, retry=RetryPolicy(sleep=sleep), rate_limit=None
        ) as c:
            again = [LocationMessage(to=number(0), location=HQ)] * 2
            sender = BulkSender(c, concurrency=1, rate_limit=None, sleep=sleep)
            summary = await sender.send_all(again)
    assert summary.sent == 2
    assert waits[0] == 1.0  # the middleware's 4^0 s retry
    assert len(waits) == 2 and 0 < waits[1] <= 1.0  # the next message to that user waited too


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": "3"}, "concurrency"),
        ({"concurrency": 2.0}, "concurrency"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_limit": "80"}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"rate_limit": float("inf")}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"grace": "x"}, "grace"),
        ({"grace": -1}, "grace"),
        ({"grace": None}, "grace"),
        ({"grace": float("inf")}, "grace"),
        ({"key": "to"}, "key"),
        ({"on_outcome": []}, "on_outcome"),
        ({"sleep": None}, "sleep"),
        ({"clock": 1.0}, "clock"),
        ({"journal": 42}, "journal"),
        ({"journal": b"run.db"}, "journal"),
    ],
)
def test_arguments_validated(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        BulkSender(**kwargs)


async def test_the_rate_limit_is_the_channels() -> None:
    async with FakeDialog360(throughput=None) as fake:
        async with (
            Dialog360Client("k", base_url=fake.url) as shared,
            Dialog360Client("k2", base_url=fake.url, rate_limit=None) as bare,
        ):
            channel_limiter = shared.rate_limit
            assert isinstance(channel_limiter, RateLimiter)
            for rate in ("channel", None, 0):  # the key's limiter, as for every client of it
                sender = BulkSender(shared, rate_limit=rate)  # type: ignore[arg-type]
                assert sender._channel_for(shared, {}).limiter is channel_limiter
            rerated = BulkSender(shared, rate_limit=500.0)._channel_for(shared, {})
            assert rerated.limiter is channel_limiter and channel_limiter.rate == 500.0
            own = BulkSender(bare, rate_limit=50.0)._channel_for(bare, {}).limiter
            assert isinstance(own, RateLimiter) and own.rate == 50.0
            assert BulkSender(bare)._channel_for(bare, {}).limiter is None  # built unpaced
        counting = CountingLimiter()
        async with Dialog360Client("k3", base_url=fake.url, rate_limit=counting) as paced:
            for rate in ("channel", None, 1000.0):  # a Limiter of one's own is used as given
                sender = BulkSender(paced, rate_limit=rate)  # type: ignore[arg-type]
                assert (await sender.send_all(messages(5))).sent == 5
    assert counting.acquired == 15  # it paced every send


async def test_bad_campaign_is_refused_before_any_request() -> None:
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        for campaign in ("", "two\nlines", 7):
            with pytest.raises(ValidationError, match="campaign"):
                await BulkSender(c, rate_limit=None).send_all(messages(3), campaign=campaign)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_key_that_is_not_a_string_fails_that_input_only() -> None:
    ledger = MemoryLedger()

    def key(message: Any) -> Any:
        return {number(3): 7, number(4): "tab\there"}.get(message.to, message.to)

    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, rate_limit=None, journal=ledger, key=key)
        outcomes = {o.message.to: o async for o in sender.run(messages(6))}
    for to in (number(3), number(4)):
        bad = outcomes.pop(to)
        assert bad.status == "failed" and isinstance(bad.error, ValidationError)
        assert "key" in str(bad.error)
        assert to.lstrip("+") not in fake.sends
    assert {o.status for o in outcomes.values()} == {"sent"}
    assert set(ledger.states) == set(outcomes)  # the journal kept recording the others


class CountingLimiter:
    """A Limiter of our own: the client and the sender only need the protocol."""

    def __init__(self) -> None:
        self.acquired = self.cuts = self.successes = 0

    async def acquire(self) -> None:
        self.acquired += 1

    def slow_down(self, factor: float = 0.7) -> None:
        self.cuts += 1

    def on_success(self) -> None:
        self.successes += 1


class MemoryLedger:
    """A Ledger of our own, as the distributed extra keeps one in Redis."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    async def claim(self, key: str) -> str | None:
        prior = self.states.get(key)
        if prior in ("sent", "attempting", "unknown"):
            return prior
        self.states[key] = "attempting"
        return None

    async def settle(self, key: str, state: str, **_: Any) -> None:
        self.states[key] = state

    async def close(self) -> None:
        pass


async def test_custom_limiter_and_ledger() -> None:
    limiter, ledger = CountingLimiter(), MemoryLedger()
    async with FakeDialog360(throughput=None) as fake:
        fake.script("POST", "/messages", FakeResponse(status=429, json=meta(130429)))
        async with Dialog360Client("k", base_url=fake.url, retry=FAST, rate_limit=limiter) as c:
            first = await BulkSender(c, journal=ledger).send_all(messages(20))
            second = await BulkSender(c, journal=ledger).send_all(messages(25))
    assert (first.sent, second.skipped, second.sent) == (20, 20, 5)
    assert limiter.acquired == 26  # one per attempt: 25 sends + 1 retry
    assert (limiter.cuts, limiter.successes) == (1, 25)
    assert set(ledger.states.values()) == {"sent"}
    assert fake.duplicates() == {}


class TroubledLedger(MemoryLedger):
    """A Ledger whose settle fails: it raises, cancels itself, or never returns."""

    def __init__(self, trouble: str) -> None:
        super().__init__()
        self.trouble = trouble
        self.settling = 0

    async def settle(self, key: str, state: str, **_: Any) -> None:
        self.settling += 1
        if self.trouble == "raises":
            raise ConnectionError("ledger down")
        if self.trouble == "cancelled":
            raise asyncio.CancelledError  # e.g. a client library cancelling its own call
        await asyncio.Event().wait()  # "hangs"


@pytest.mark.parametrize("trouble", ["raises", "cancelled"])
async def test_failing_settle_still_yields_every_outcome(trouble: str) -> None:
    ledger = TroubledLedger(trouble)
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, concurrency=4, rate_limit=None, journal=ledger)
        outcomes = [o async for o in sender.run(messages(20))]
        summary = await BulkSender(c, rate_limit=None, journal=TroubledLedger(trouble)).send_all(
            messages(5, 100)
        )
    assert len(outcomes) == 20 and {o.status for o in outcomes} == {"sent"}
    assert ledger.settling == 20
    assert summary.sent == 5
    assert sum(fake.sends.values()) == 25


@pytest.mark.parametrize("grace", [0.0, 0.2])
async def test_cancel_during_a_hanging_settle_keeps_the_outcomes(grace: float) -> None:
    ledger = TroubledLedger("hangs")
    outcomes: list[Outcome] = []
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(
            c,
            concurrency=4,
            rate_limit=None,
            journal=ledger,
            grace=grace,
            on_outcome=outcomes.append,
        )
        task = asyncio.create_task(sender.send_all(messages(50)))
        for _ in range(500):  # bounded: every worker is stuck in its settle
            if ledger.settling == 4:
                break
            await asyncio.sleep(0.01)
        assert ledger.settling == 4 and outcomes == []
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)  # the grace runs out mid-settle
    assert sum(fake.sends.values()) == 4
    assert [o.status for o in outcomes] == ["sent"] * 4  # the sends' real results
    assert sender.stats.sent == 4 and sender.stats.done == sender.stats.taken == 4


async def test_cancel_does_not_send_what_waits_for_a_permit() -> None:
    outcomes: list[Outcome] = []
    two_done = asyncio.Event()

    def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 2:
            two_done.set()

    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, concurrency=8, rate_limit=5.0, grace=10.0, on_outcome=collect)
        task = asyncio.create_task(sender.send_all(messages(100)))
        await asyncio.wait_for(two_done.wait(), timeout=30)
        sent_at_cancel = sum(fake.sends.values())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sent_after = sum(fake.sends.values())
    # Workers queued behind the 5 msg/s limiter had sent nothing: cancelled at once, no grace.
    assert sent_after - sent_at_cancel <= 1
    assert sender.stats.cancelled >= 8
    assert sender.stats.done == sender.stats.taken
