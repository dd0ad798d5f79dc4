"""Property: whatever mix of faults the server and the network produce, and wherever a run is
cancelled, every input ends in exactly one outcome, and after a resume with the same store the
server has received each recipient at most once."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialog360_async import (
    BulkSender,
    Dialog360Client,
    Location,
    LocationMessage,
    Outcome,
    RetryPolicy,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

HQ = Location(latitude=1, longitude=2)


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


FAST = RetryPolicy(max_attempts=3, sleep=no_sleep)
RATE_LIMITED = {"error": {"message": "(#130429) limit", "type": "OAuthException", "code": 130429}}

# Answers of a server that took the message (process=True) but whose reply cannot be read as a
# success, resets with and without processing, ambiguous 5xx, and throttling.
FAULTS = st.sampled_from(
    [
        FakeResponse(status=200, body=b"<html>not json</html>", process=True),
        FakeResponse(status=200, body=b'{"messages": [{"id": "wamid.', process=True),
        FakeResponse(status=200, body=b"", process=True),
        FakeResponse(status=204, process=True),
        FakeResponse(status=200, json={"messages": [{}]}, process=True),
        FakeResponse(status=200, json={"messages": [{"id": None}]}, process=True),
        FakeResponse(close=True, process=True),
        FakeResponse(close=True, process=False),
        FakeResponse(status=500, process=True),
        FakeResponse(status=504, process=True),
        FakeResponse(status=429, json=RATE_LIMITED),
    ]
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scenario(
    count: int,
    channels: list[bool],
    faults: list[FakeResponse],
    cancel_after: int | None,
    concurrency: int,
    folder: Path,
) -> None:
    store = folder / "broadcast.db"
    async with FakeDialog360(throughput=None) as fake:
        dead = f"http://127.0.0.1:{closed_port()}"
        clients = [
            Dialog360Client(
                f"key-{i}", base_url=fake.url if alive else dead, retry=FAST, rate_limit=None
            )
            for i, alive in enumerate(channels)
        ]
        items = [
            (clients[n % len(clients)], LocationMessage(to=f"+1650{n:07d}", location=HQ))
            for n in range(count)
        ]
        try:
            fake.script("POST", "/messages", *faults)
            first: list[Outcome] = []
            enough = asyncio.Event()

            def collect(outcome: Outcome) -> None:
                first.append(outcome)
                if cancel_after is not None and len(first) >= cancel_after:
                    enough.set()

            # A dead channel waits out its outage_timeout (then: failed, unreachable).
            sender = BulkSender(
                concurrency=concurrency,
                rate_limit=None,
                outage_timeout=0.3,
                journal=store,
                on_outcome=collect,
            )
            task = asyncio.create_task(sender.send_all(items))
            if cancel_after is not None:
                waiter = asyncio.create_task(enough.wait())
                await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            stats = sender.stats
            assert set(Counter(o.message.to for o in first).values()) <= {1}
            assert len(first) == stats.taken == stats.done
            if cancel_after is None:
                assert stats.taken == count

            second: list[Outcome] = []
            resumed = BulkSender(
                concurrency=concurrency,
                rate_limit=None,
                outage_timeout=0.3,
                journal=store,
                on_outcome=second.append,
            )
            summary = await asyncio.wait_for(resumed.send_all(items), timeout=60)
        finally:
            for client in clients:
                await client.close()
        assert summary.total == count
        assert sorted(o.message.to for o in second) == sorted(m.to for _, m in items)
        assert fake.duplicates() == {}, (fake.duplicates(), faults)
        assert all(n <= 1 for n in fake.sends.values())
        # What the first run sent is never sent by the resume; what it knew is kept.
        sent_first = {o.message.to for o in first if o.status == "sent"}
        again = {o.message.to: o.status for o in second if o.message.to in sent_first}
        assert set(again.values()) <= {"skipped"}
        unknown_first = {o.message.to for o in first if o.status == "unknown"}
        assert {o.status for o in second if o.message.to in unknown_first} <= {"unknown"}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(min_value=1, max_value=24),
    channels=st.lists(st.booleans(), min_size=1, max_size=3).filter(any),
    faults=st.lists(FAULTS, max_size=12),
    cancel_after=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
    concurrency=st.sampled_from([1, 3, 8]),
)
def test_every_input_one_outcome_and_at_most_one_send_per_recipient(
    count: int,
    channels: list[bool],
    faults: list[FakeResponse],
    cancel_after: int | None,
    concurrency: int,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(count, channels, faults, cancel_after, concurrency, Path(folder)))
