"""BroadcastStore in one process: campaigns, keys unique within a run, one sender at a time,
unreadable records kept in doubt, and files that are no store refused before any send."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dialog360_async import (
    BroadcastStore,
    BulkSender,
    Dialog360Client,
    JournalError,
    LocationMessage,
    Outcome,
    ValidationError,
    message_key,
)
from dialog360_async.testing import FakeDialog360

from .test_bulk import HQ, messages, number

KEY = "store-test-key-0123456789"


def rows(path: Path) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM messages ORDER BY id"))


async def test_campaign_generated_exposed_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, rate_limit=None, journal=path)
        first = await sender.send_all(messages(5))
        again = await BulkSender(c, rate_limit=None, journal=path).send_all(messages(5))
        other = await BulkSender(c, rate_limit=None, journal=path).send_all(
            messages(5), campaign="spring-sale"
        )
        no_store = await BulkSender(c, rate_limit=None).send_all([])
    assert first.campaign is not None and re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", first.campaign)
    assert sender.campaign == first.campaign and f"campaign:  {first.campaign}" in str(first)
    assert (again.campaign, again.skipped, again.sent) == (first.campaign, 5, 0)
    assert (other.campaign, other.sent) == ("spring-sale", 5)  # a new campaign is a new send
    assert Counter(r["campaign"] for r in rows(path)) == {first.campaign: 5, "spring-sale": 5}
    assert set(fake.sends.values()) == {2}
    assert no_store.campaign is not None  # generated without a store too


async def test_repeated_key_fails_the_later_inputs_and_sends_once(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    same = LocationMessage(to=number(1), location=HQ)
    shared = [LocationMessage(to=number(n), location=HQ) for n in (2, 3, 4)]

    def key(message: Any) -> str:
        return "order-17" if message in shared else message_key(message)

    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        items = [same, *shared, same]
        first = [o async for o in BulkSender(c, rate_limit=None, journal=path, key=key).run(items)]
        second = [o async for o in BulkSender(c, rate_limit=None, journal=path, key=key).run(items)]
    for outcomes in (first, second):
        assert len(outcomes) == 5
        duplicates = [o for o in outcomes if o.status == "failed"]
        assert len(duplicates) == 3  # the second `same`, and two of the three sharing a key
        assert all(isinstance(o.error, ValidationError) for o in duplicates)
        assert all("duplicate key" in str(o.error) for o in duplicates)
    assert Counter(o.status for o in first) == {"sent": 2, "failed": 3}
    assert Counter(o.status for o in second) == {"skipped": 2, "failed": 3}
    assert sum(fake.sends.values()) == 2 and fake.duplicates() == {}
    assert len(rows(path)) == 2


async def test_second_sender_on_the_same_store_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    started = asyncio.Event()

    def seen(outcome: Outcome) -> None:
        started.set()

    async with FakeDialog360(throughput=None, latency=0.01) as fake:
        async with (
            Dialog360Client("first-key", base_url=fake.url, rate_limit=None) as first,
            Dialog360Client("second-key", base_url=fake.url, rate_limit=None) as second,
        ):
            running = BulkSender(
                first, concurrency=2, rate_limit=None, journal=path, on_outcome=seen
            )
            task = asyncio.create_task(running.send_all(messages(2000)))
            await asyncio.wait_for(started.wait(), timeout=30)
            refused = BulkSender(second, rate_limit=None, journal=path)
            with pytest.raises(JournalError, match="in use by another sender"):
                await refused.send_all(messages(5, 5000))
            with pytest.raises(JournalError, match="in use by another sender"):
                await anext(refused.run(messages(5, 5000)))
            store = BroadcastStore(path)  # opening to read is fine; sending is not
            with pytest.raises(JournalError, match="in use"):
                store.begin()
            await store.close()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert {r.channel for r in fake.requests} == {"channel-1"}  # only the first's key
            # Released with the run: the next sender gets the store.
            after = await BulkSender(second, rate_limit=None, journal=path).send_all(messages(3))
    assert after.total == 3 and after.skipped + after.sent + after.unknown == 3
    assert fake.duplicates() == {}


async def test_one_store_object_runs_one_broadcast_at_a_time(tmp_path: Path) -> None:
    async with FakeDialog360(throughput=None, latency=0.01) as fake:
        async with (
            Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
            BroadcastStore(tmp_path / "b.db") as store,
        ):
            one = asyncio.create_task(BulkSender(c, journal=store).send_all(messages(200)))
            await asyncio.sleep(0.05)
            with pytest.raises(JournalError, match="already sending"):
                await BulkSender(c, journal=store).send_all(messages(5, 900))
            summary = await one
            assert summary.sent == 200
            assert store.run_id is None and store.campaign == summary.campaign  # kept open
            again = await BulkSender(c, journal=store).send_all(messages(200))
    assert again.skipped == 200
    assert sum(fake.sends.values()) == 200


async def test_leaving_run_early_releases_the_store_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, concurrency=4, rate_limit=None, journal=path)
        async with contextlib.aclosing(sender.run(messages(300))) as outcomes:
            async for outcome in outcomes:
                if outcome.ok:
                    break
        taken = sender.stats.taken
        resumed = await BulkSender(c, concurrency=4, rate_limit=None, journal=path).send_all(
            messages(300)
        )
    assert 0 < taken < 300
    assert resumed.total == 300 and resumed.failed == resumed.cancelled == 0
    assert resumed.sent + resumed.skipped + resumed.unknown == 300
    assert fake.duplicates() == {}


async def test_file_that_is_no_store_is_refused_before_any_request(tmp_path: Path) -> None:
    jsonl = tmp_path / "old.jsonl"
    old = '{"key":"a","state":"sent","id":"wamid.1"}\n{"key":"b","state":"attempting"}\n'
    jsonl.write_text(old)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    marked = tmp_path / "marked.db"  # a store's mark, but no store's version
    with contextlib.closing(sqlite3.connect(marked)) as db:
        db.execute("PRAGMA application_id = 1144206896")
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        with pytest.raises(JournalError, match=r"not a broadcast store.*JSONL"):
            await BulkSender(c, journal=jsonl).send_all(messages(3))
        with pytest.raises(JournalError, match="SQLite database but not a broadcast store"):
            await BulkSender(c, journal=other).send_all(messages(3))
        with pytest.raises(JournalError, match="SQLite database but not a broadcast store"):
            await BulkSender(c, journal=marked).send_all(messages(3))
    assert fake.requests == []
    assert jsonl.read_text() == old  # left as it was


async def test_unreadable_records_are_reported_and_never_resent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        first = await BulkSender(c, rate_limit=None, journal=path).send_all(messages(10))
        keys = [message_key(m) for m in messages(10)]
        with contextlib.closing(sqlite3.connect(path)) as db, db:  # hand edits
            db.execute("UPDATE messages SET state = 'garbage' WHERE key = ?", (keys[0],))
            db.execute("UPDATE messages SET outcome = 'maybe' WHERE key = ?", (keys[1],))
            db.execute("UPDATE messages SET outcome = NULL WHERE key = ?", (keys[2],))
            db.execute("UPDATE messages SET key = CAST(key AS BLOB) WHERE key = ?", (keys[3],))
        caplog.set_level(logging.WARNING, logger="dialog360_async")
        sender = BulkSender(c, rate_limit=None, journal=path)
        outcomes = {o.key: o async for o in sender.run(messages(10))}
    assert first.sent == 10
    assert {k: outcomes[k].status for k in keys[:4]} == dict.fromkeys(keys[:4], "unknown")
    assert {outcomes[k].status for k in keys[4:]} == {"skipped"}
    assert sender.store is not None and sorted(sender.store.unreadable) == sorted(keys[:4])
    warning = next(r.getMessage() for r in caplog.records if "unreadable" in r.getMessage())
    assert "4 unreadable record(s)" in warning and all(k in warning for k in keys[:4])
    assert sum(fake.sends.values()) == 10 and fake.duplicates() == {}


async def test_cancel_then_resume_sends_the_rest_once(tmp_path: Path) -> None:
    path, total = tmp_path / "b.db", 600
    done = asyncio.Event()
    outcomes: list[Outcome] = []

    def collect(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == total // 3:
            done.set()

    async with FakeDialog360(throughput=None, record_requests=False, latency=0.002) as fake:
        async with Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c:
            sender = BulkSender(c, concurrency=16, rate_limit=None, journal=path, grace=0.0)
            sender_task = asyncio.create_task(
                BulkSender(
                    c, concurrency=16, rate_limit=None, journal=path, grace=0.0, on_outcome=collect
                ).send_all(messages(total))
            )
            await asyncio.wait_for(done.wait(), timeout=30)
            sender_task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sender_task
            resumed = await sender.send_all(messages(total))
    unknown_before = sum(o.status == "unknown" for o in outcomes)
    assert Counter(o.key for o in outcomes).most_common(1)[0][1] == 1
    assert resumed.total == total and resumed.failed == resumed.cancelled == 0
    assert resumed.unknown == unknown_before  # in doubt stays in doubt, and nothing else
    assert resumed.sent + resumed.skipped + resumed.unknown == total
    assert fake.duplicates() == {}
    assert sum(fake.sends.values()) >= resumed.sent + resumed.skipped


async def test_input_that_is_no_iterable_is_refused_and_the_store_stays_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        for bad in (42, "+16500000001"):
            with pytest.raises(ValidationError, match="messages"):
                await BulkSender(c, journal=path).send_all(bad)  # type: ignore[arg-type]
        summary = await BulkSender(c, rate_limit=None, journal=path).send_all(messages(2))
    assert summary.sent == 2


async def test_spam_limit_frees_the_claims_of_the_halted_channel(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with FakeDialog360(throughput=None) as fake:
        fake.fail_recipient(number(0), code=131048, times=1)  # lifted for the second run
        async with Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c:
            first = await BulkSender(c, concurrency=4, journal=path).send_all(messages(100))
            second = await BulkSender(c, concurrency=4, journal=path).send_all(messages(100))
    assert first.failed == 1 and first.halted
    assert first.sent + first.cancelled == 99 and first.cancelled > 0
    # Nothing the halt stopped is in doubt: claimed (some one send ahead) and freed again.
    assert (second.skipped, second.unknown) == (first.sent, 0)
    assert second.sent == first.failed + first.cancelled
    assert fake.duplicates() == {} and sum(fake.sends.values()) == 100


async def test_the_store_as_a_plain_ledger(tmp_path: Path) -> None:
    async with BroadcastStore(tmp_path / "b.db") as store:
        assert await store.claim("order-1") is None  # starts a run
        assert store.run_id is not None and store.campaign is not None
        await store.settle("order-1", "sent", message_id="wamid.1")
        assert await store.claim("order-2") is None
        with pytest.raises(ValidationError, match="state"):
            await store.settle("order-2", "attempting")
        assert await store.claim("order-1") == "duplicate"
        store.finish()
        assert await store.claim("order-1") == "sent"  # a new run
        assert await store.claim("order-2") == "attempting"  # never settled: in doubt
    with contextlib.closing(sqlite3.connect(tmp_path / "b.db")) as db:
        assert db.execute("SELECT wamid FROM messages WHERE key = 'order-1'").fetchone() == (
            "wamid.1",
        )


async def test_settles_of_every_shape_in_one_commit_write_their_columns(tmp_path: Path) -> None:
    # A settle with no error is written by a statement of its own (no NULLs bound): one commit
    # mixing both kinds must still write each row as its own outcome says.
    where = LocationMessage(to=number(1), location=HQ)
    async with BroadcastStore(tmp_path / "b.db") as store:
        for key in ("sent", "coded", "broken", "dropped"):
            assert await store.claim_message(key, to=number(1)) is None
        await store.settle("sent", "sent", message_id="wamid.1")
        await store.settle("coded", "failed", code=131026)
        error = ValidationError("key", "duplicate in this run")
        await store.record_outcome(
            Outcome(message=where, status="failed", error=error, attempts=2, key="broken")
        )
        store.release("dropped")
    got = {
        row["key"]: (
            row["outcome"], row["wamid"], row["error_code"], row["error_title"], row["reason"],
            row["attempts"],
        )
        for row in rows(tmp_path / "b.db")
    }  # fmt: skip
    assert got == {
        "sent": ("sent", "wamid.1", None, None, None, 0),
        "coded": ("failed", None, 131026, None, None, 0),
        "broken": ("failed", None, None, str(error)[:300], "duplicate", 2),
        "dropped": ("cancelled", None, None, None, None, 0),
    }


async def test_one_commit_of_many_claims_new_and_old_gives_each_its_own_fate_and_row(
    tmp_path: Path,
) -> None:
    # Claims are written several rows to a statement: a commit of more claims than one holds,
    # new keys among keys of the last run, must still give each key its own row and fate.
    old = {f"k{i:03d}": ("sent", "failed", "cancelled", None)[i % 4] for i in range(0, 150, 3)}
    async with BroadcastStore(tmp_path / "b.db") as store:
        for key in old:  # a fresh store: every key new
            assert store.claim_nowait(key, to=number(1)) is None
        assert all(store.confirm(key) is None for key in old)
        first = {key: store.callback_for(key) for key in old}
        for key, outcome in old.items():
            if outcome is not None:
                await store.settle(key, outcome)
        store.finish()
        by_row = {row["id"]: row["key"] for row in rows(tmp_path / "b.db")}
        assert {key: by_row[int(str(tag).rsplit(":", 1)[1])] for key, tag in first.items()} == {
            key: key for key in old
        }
        keys = [f"k{i:03d}" for i in range(150)]
        for key in keys:  # one commit: every claim is queued before the first confirm
            assert store.claim_nowait(key, to=number(2), channel="c") is None
        fates = {key: store.confirm(key) for key in keys}
        tags = {key: store.callback_for(key) for key in keys}
    expected = {"sent": "sent", "failed": None, "cancelled": None, None: "attempting"}
    for key in keys:
        assert fates[key] == (expected[old[key]] if key in old else None), key
    by_row = {row["id"]: row for row in rows(tmp_path / "b.db")}
    assert len(by_row) == 150
    for key in keys:
        tag = tags[key]
        if fates[key] is None:  # to be sent: its tag names its own row, claimed by this run
            assert tag is not None
            row = by_row[int(tag.rsplit(":", 1)[1])]
            assert (row["key"], row["state"], row["recipient"]) == (key, "attempting", number(2))
        else:
            assert tag is None


def test_store_arguments_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="path"):
        BroadcastStore(42)  # type: ignore[arg-type]
    store = BroadcastStore(tmp_path / "b.db")
    with pytest.raises(ValidationError, match="campaign"):
        store.begin(campaign="tab\there")
    asyncio.run(store.close())
    with pytest.raises(JournalError, match="closed"):
        store.begin()
