"""BroadcastStore as the webhook store: status merge, dedup that survives restarts, orphans,
unknown sends settled by their status, reports, and the schema 1 -> 2 upgrade. Real SQLite
files, a real aiohttp receiver on 127.0.0.1, real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialog360_async import (
    BroadcastStore,
    BulkSender,
    Dialog360Client,
    Location,
    LocationMessage,
    Outcome,
    _store_delivery,
)
from dialog360_async._report import DeliveryReport
from dialog360_async._results import ErrorDetail
from dialog360_async._store_delivery import _BY_ROW, _FAIL_WAMID, _RAISE_WAMID
from dialog360_async._store_file import SCHEMA_VERSION, row_of_tag
from dialog360_async.errors import NotEngagedError
from dialog360_async.testing import FakeDialog360
from dialog360_async.testing._delivery import WebhookPlan
from dialog360_async.webhooks import (
    DEDUP_TTL,
    InboundMessage,
    Notification,
    StatusUpdate,
    WebhookReceiver,
)

from .webhooks.harness import PATH, Recorder, serve
from .webhooks.payloads import cloud, encode, status

CAMPAIGN = "spring"
T0 = 1_767_225_600.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def update(wamid: str, value: str, *, code: int | None = None, tag: str | None = None) -> Any:
    errors = (ErrorDetail(code=code, message=f"title {code}"),) if code is not None else ()
    return StatusUpdate(
        message_id=wamid, status=value, timestamp=int(T0), callback_data=tag, errors=errors
    )


def note(*statuses: StatusUpdate, messages: Iterable[InboundMessage] = ()) -> Notification:
    return Notification(statuses=statuses, messages=tuple(messages))


def row(path: Path, key: str, campaign: str = CAMPAIGN) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        found = db.execute(
            "SELECT * FROM messages WHERE campaign = ? AND key = ?", (campaign, key)
        ).fetchone()
    assert found is not None
    return dict(found)


def tag_of(path: Path, key: str, campaign: str = CAMPAIGN) -> str:
    """The callback tag the store gave ``key``'s send: its prefix, then the row id."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        (salt,) = db.execute("SELECT value FROM store_info WHERE name = 'tag'").fetchone()
    return f"d360:{salt}:{row(path, key, campaign)['id']}"


async def seed(
    path: Path, outcomes: dict[str, str | None], campaign: str = CAMPAIGN, **opened: Any
) -> None:
    """A finished run: key -> wamid (sent), "unknown", "failed", "cancelled" or None (claimed,
    never settled: a crash)."""
    async with BroadcastStore(path, **opened) as store:
        store.begin(campaign)
        for key, fate in outcomes.items():
            assert await store.claim(key) is None
            if fate in ("unknown", "failed", "cancelled"):
                await store.settle(key, fate)  # type: ignore[arg-type]
            elif fate is not None:
                await store.settle(key, "sent", message_id=fate)


def counts(report: DeliveryReport) -> dict[str, Any]:
    return {
        name: value
        for name, value in attrs.asdict(report, recurse=False).items()
        if name != "generated_at"
    }


def kinds_sum(report: DeliveryReport) -> int:
    r = report
    return r.accepted + r.unknown_settled + r.unknown + r.rejected + r.cancelled + r.pending


# -- the merge -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "delivery", "failed"),
    [
        (["sent"], "sent", False),
        (["sent", "delivered", "read"], "read", False),
        (["read", "delivered", "sent"], "read", False),  # rank, never arrival order
        (["read"], "read", False),  # read implies delivered (counted below)
        (["delivered", "played", "read"], "played", False),
        (["sent", "failed"], "sent", True),
        (["failed", "sent"], "sent", True),  # a late sent never clears the failure
        (["failed", "delivered"], "delivered", True),  # multi-device: kept with its code
        (["delivered", "failed", "read"], "read", True),
        (["deleted", "warning"], None, False),  # deduplicated, no delivery fact
    ],
)
async def test_merge_table(
    tmp_path: Path, sequence: list[str], delivery: str | None, failed: bool
) -> None:
    path = tmp_path / "b.db"
    await seed(path, {"k": "wamid.1"})
    async with BroadcastStore(path) as store:
        for value in sequence:
            code = 131049 if value == "failed" else None
            await store.record_webhook(note(update("wamid.1", value, code=code)))
        report = await store.report()
    found = row(path, "k")
    assert found["delivery"] == delivery
    assert (found["failed_at"] is not None) == failed
    assert found["error_code"] == (131049 if failed else None)
    ranked = {"delivered": 2, "read": 3, "played": 4}.get(delivery or "", 0)
    assert (report.delivered, report.read) == (int(ranked >= 2), int(ranked >= 3))
    assert report.undelivered == int(failed)
    assert report.sent == report.accepted == report.messages == 1


async def test_failure_kept_with_code_and_title_and_reported_by_code(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    await seed(path, {"a": "wamid.a", "b": "wamid.b", "c": "wamid.c"})
    async with BroadcastStore(path) as store:
        await store.record_webhook(
            note(update("wamid.a", "failed", code=131049), update("wamid.b", "failed", code=1))
        )
        await store.record_webhook(note(update("wamid.a", "delivered")))
        await store.record_webhook(note(update("wamid.a", "sent"), update("wamid.c", "read")))
        report = await store.report()
    first = row(path, "a")
    assert (first["delivery"], first["error_code"], first["error_title"]) == (
        "delivered",
        131049,
        "title 131049",
    )
    assert (report.delivered, report.read, report.undelivered) == (2, 1, 2)
    failures = {(f.status, f.reason, f.code, f.meaning, f.count) for f in report.failures}
    assert failures == {
        (
            "undelivered",
            "undelivered",
            131049,
            "not delivered to keep engagement healthy (marketing limit)",
            1,
        ),
        ("undelivered", "server-error", 1, "title 1", 1),  # no meaning known: the title
    }


# -- dedup -----------------------------------------------------------------------------------


async def test_dedup_survives_a_restart_and_expires_after_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    clock = Clock()
    inbound = InboundMessage(message_id="wamid.in", wa_id="4917600000001", type="text", timestamp=1)
    batch = note(update("wamid.1", "sent"), update("wamid.1", "sent"), messages=[inbound, inbound])
    async with BroadcastStore(path, clock=clock) as store:
        first = await store.record_webhook(batch)
    assert [s.key for s in first.statuses] == [("wamid.1", "sent")]  # twice in one: once
    assert [m.key for m in first.messages] == [("wamid.in", "")]
    for offset, fresh in ((DEDUP_TTL - 1, False), (DEDUP_TTL + 1, True)):
        clock.now = T0 + offset
        async with BroadcastStore(path, clock=clock) as store:  # a restart
            again = await store.record_webhook(batch)
        assert (len(again.statuses), len(again.messages)) == ((1, 1) if fresh else (0, 0))


def seen(path: Path) -> tuple[set[tuple[str, str]], int]:
    """The dedup keys in the file, and its orphans."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        keys = set(db.execute("SELECT id, status FROM webhook_seen"))
        return keys, db.execute("SELECT count(*) FROM orphans").fetchone()[0]


async def test_a_sweep_walks_every_key_and_deletes_only_the_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store_delivery, "SWEPT", 3)  # a walk of several sweeps
    path = tmp_path / "b.db"
    clock = Clock()
    old = [update(f"wamid.{n:02d}", "sent") for n in range(10)]  # orphans too: no rows
    young = [update(f"wamid.{n:02d}", "read") for n in range(0, 10, 2)]
    async with BroadcastStore(path, clock=clock) as store:
        await store.record_webhook(note(*old))
        clock.now = T0 + DEDUP_TTL / 2
        await store.record_webhook(note(*young))
        clock.now = T0 + DEDUP_TTL + 61  # old expired, young not; a sweep is due
        for step in range(8):  # each one sweeps: 1 s after a sweep that left keys, 60 s after
            await store.record_webhook(note(update(f"wamid.x{step}", "sent")))  # a wrap
            clock.now += 61.0
        walked = seen(path)
        again = await store.record_webhook(note(*old, *young))
    assert walked == ({s.key for s in young} | {(f"wamid.x{n}", "sent") for n in range(8)}, 13)
    assert [s.key for s in again.statuses] == [s.key for s in old]  # new again: forgotten


async def test_concurrent_calls_share_a_commit_and_return_each_key_once(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    await seed(path, {"k": "wamid.1"})
    async with BroadcastStore(path) as store:
        calls = [note(update("wamid.1", v)) for v in ("sent", "delivered", "sent", "read")] * 3
        results = await asyncio.gather(*(store.record_webhook(n) for n in calls))
        report = await store.report()
    keys = [s.key for r in results for s in r.statuses]
    assert sorted(keys) == sorted({("wamid.1", v) for v in ("sent", "delivered", "read")})
    assert report.read == 1


async def test_a_failed_write_raises_and_records_nothing(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    batch = note(update("wamid.seen", "sent"), update("wamid.orphan", "delivered"))
    async with BroadcastStore(path) as store:
        with contextlib.closing(sqlite3.connect(path)) as db:  # the orphan's write fails
            db.execute(
                "CREATE TRIGGER fail BEFORE INSERT ON orphans BEGIN SELECT RAISE(ABORT, 'disk'); "
                "END"
            )
            db.commit()
            with pytest.raises(Exception, match=r"could not record webhooks.*disk"):
                await store.record_webhook(batch)
            db.execute("DROP TRIGGER fail")
            db.commit()
        again = await store.record_webhook(batch)
    assert [s.key for s in again.statuses] == [s.key for s in batch.statuses]  # none was kept


# -- orphans and in-doubt sends --------------------------------------------------------------


async def test_orphan_matched_when_the_sender_settles_its_wamid(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with BroadcastStore(path) as sender, BroadcastStore(path) as receiver:
        sender.begin(CAMPAIGN)
        assert await sender.claim("k") is None
        sender._commit()  # the claim is in the file; its answer is not yet
        await receiver.record_webhook(note(update("wamid.early", "read")))
        before = await receiver.report(CAMPAIGN)
        await sender.settle("k", "sent", message_id="wamid.early")
        sender.finish()
        after = await receiver.report(CAMPAIGN)
    assert (before.orphans, before.read, before.pending) == (1, 0, 1)
    assert (after.orphans, after.read, after.accepted) == (0, 1, 1)
    assert row(path, "k")["delivery"] == "read"


async def test_orphan_matched_when_a_tagged_status_names_its_wamid(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    await seed(path, {"k": "unknown"})
    tag = tag_of(path, "k")  # what the send carried; its answer was lost
    async with BroadcastStore(path) as store:
        assert [d["callback"] for d in store.in_doubt()] == [tag]
        # failed without the tag (Meta may not echo it): an orphan until the tag names it
        await store.record_webhook(note(update("wamid.x", "failed", code=131026)))
        assert [d["key"] for d in store.in_doubt()] == ["k"]
        await store.record_webhook(note(update("wamid.x", "delivered", tag=tag)))
        report = await store.report()
        doubt = list(store.in_doubt())
    found = row(path, "k")
    assert (found["wamid"], found["delivery"], found["error_code"]) == (
        "wamid.x",
        "delivered",
        131026,
    )
    assert found["outcome"] == "unknown"  # the send's own answer stays visible
    assert (report.unknown, report.unknown_settled, report.sent, report.orphans) == (0, 1, 1, 0)
    assert (report.delivered, report.undelivered) == (1, 1)
    assert doubt == []


async def test_only_a_matching_status_settles_an_unknown_or_crashed_send(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    await seed(path, {"lost": "unknown", "crashed": None, "ok": "wamid.ok"})
    async with BroadcastStore(path) as store:
        await store.record_webhook(
            note(update("wamid.z", "delivered", tag="d360:0therst0re:1"))  # not this store's
        )
        held = await store.report()
        doubt = [(d["key"], d["state"], d["outcome"]) for d in store.in_doubt()]
        tags = [tag_of(path, key) for key in ("lost", "crashed")]
        await store.record_webhook(
            note(update("wamid.l", "sent", tag=tags[0]), update("wamid.c", "read", tag=tags[1]))
        )
        settled = await store.report()
        assert list(store.in_doubt()) == []
        store.begin()  # a resume: both count as sent now, neither is sent again
        fates = [await store.claim(key) for key in ("lost", "crashed", "ok")]
    assert (held.unknown, held.pending, held.unknown_settled, held.orphans) == (1, 1, 0, 0)
    assert doubt == [("lost", "settled", "unknown"), ("crashed", "attempting", None)]
    assert (settled.unknown, settled.pending, settled.unknown_settled) == (0, 0, 2)
    assert (settled.sent, settled.read, settled.delivered) == (3, 1, 1)
    assert fates == ["sent", "sent", "sent"]


async def test_in_doubt_rows_and_report_on_a_store_opened_only_to_read(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    clock = Clock()
    await seed(path, {"a": "unknown", "b": None}, clock=clock)
    async with BroadcastStore(path) as sender:
        sender.begin()  # a sender holds the lock; a reader needs none of it
        async with BroadcastStore(path, clock=clock) as reader:
            doubt = list(reader.in_doubt())
            assert reader.campaigns() == [CAMPAIGN]
            await reader.record_webhook(note(update("wamid.n", "sent")))
            report = await reader.report()
    assert [d["key"] for d in doubt] == ["a", "b"]
    assert set(doubt[0]) == {
        "campaign",
        "key",
        "recipient",
        "channel",
        "state",
        "outcome",
        "attempts",
        "wamid",
        "callback",
        "error_code",
        "error_title",
        "claimed_at",
        "settled_at",
    }
    assert doubt[0]["callback"] == tag_of(path, "a")
    assert doubt[0]["claimed_at"].endswith("Z") and doubt[1]["settled_at"] is None
    assert json.dumps(doubt)  # JSONL-ready
    assert (report.unknown, report.pending, report.orphans) == (1, 1, 1)


# -- reports ---------------------------------------------------------------------------------


async def test_report_kinds_sum_to_messages_with_failures_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    clock = Clock()
    await seed(path, {"old": "wamid.old"}, campaign="winter")
    async with BroadcastStore(path, clock=clock) as store:
        store.begin(CAMPAIGN)
        keys = [f"k{n}" for n in range(8)]
        for key in keys:
            assert await store.claim(key) is None
        for n in range(3):
            await store.settle(keys[n], "sent", message_id=f"wamid.{n}")
        message = LocationMessage(to="+16500000001", location=Location(latitude=1, longitude=2))
        refused = NotEngagedError("outside the window", code=131047, status=400)
        await store.record_outcome(
            Outcome(message=message, status="failed", error=refused, attempts=1, key=keys[3])
        )
        await store.settle(keys[4], "failed")
        store.release(keys[5])
        await store.settle(keys[6], "unknown")  # keys[7]: still attempting
        store.finish()
        await store.record_webhook(
            note(update("wamid.0", "read"), update("wamid.1", "failed", code=131049))
        )
        clock.now = T0 + 10_000
        report = await store.report(horizon=3600)
        recent = await store.report(horizon=1e9)
        winter = await store.report("winter")
        assert store.campaigns() == ["winter", CAMPAIGN]
    assert kinds_sum(report) == report.messages == 8
    assert (report.accepted, report.rejected, report.cancelled) == (3, 2, 1)
    assert (report.unknown, report.pending, report.unknown_settled) == (1, 1, 0)
    assert (report.sent, report.delivered, report.read, report.undelivered) == (3, 1, 1, 1)
    assert (report.unconfirmed, recent.unconfirmed) == (1, 0)  # wamid.2: nothing past the hour
    failures = {(f.status, f.reason, f.code, f.count) for f in report.failures}
    assert failures == {
        ("failed", "not-engaged", 131047, 1),
        ("failed", "other", None, 1),
        ("undelivered", "undelivered", 131049, 1),
    }
    assert (winter.messages, winter.accepted) == (1, 1)


async def test_report_on_a_large_store_counts_every_row(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    total = 200_000
    await seed(path, {})
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executemany(
            "INSERT INTO messages (campaign, key, state, outcome, wamid, delivery, failed_at, "
            "claimed_at, settled_at) VALUES (?, ?, 'settled', ?, ?, ?, ?, ?, ?)",
            (
                (
                    CAMPAIGN,
                    f"k{n}",
                    "sent" if n % 4 else "unknown",
                    f"wamid.{n}" if n % 4 else None,
                    (None, "delivered", "read", "sent")[n % 4],
                    T0 if n % 8 == 3 else None,
                    T0,
                    T0,
                )
                for n in range(total)
            ),
        )
        db.commit()
        plans = [
            " ".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {query}", values))
            for query, values in (
                (_RAISE_WAMID, (2, "read", 0, "x")),
                (_FAIL_WAMID, (0, "", 0, "x")),
                (_BY_ROW, (1,)),
            )
        ]
    async with BroadcastStore(path) as store:
        report = await store.report()
    assert all("messages_wamid" in plan for plan in plans[:2])  # no scans per status
    assert "PRIMARY KEY" in plans[2]
    assert report.messages == kinds_sum(report) == total
    assert (report.accepted, report.unknown) == (total * 3 // 4, total // 4)
    assert report.delivered == total // 2 and report.read == total // 4
    assert report.undelivered == total // 8


# -- callback tags ---------------------------------------------------------------------------


async def test_callback_tags_name_the_row_and_only_this_store(tmp_path: Path) -> None:
    key = "+16505550123:abcdef"
    async with BroadcastStore(tmp_path / "a.db") as one, BroadcastStore(tmp_path / "b.db") as two:
        assert one.callback_for(key) is None  # no claim
        tags = []
        for store in (one, two):
            store.begin(CAMPAIGN)
            assert await store.claim(key) is None
            tags.append(store.callback_for(key))
    first, second = tags
    assert first is not None and second is not None and first != second  # two files
    assert first.isascii() and len(first) <= 64 and "6505550123" not in first
    prefix = first[: first.rindex(":") + 1]
    assert row_of_tag(first, prefix) == row(tmp_path / "a.db", key)["id"]
    assert row_of_tag(second, prefix) is None  # the other file's
    for hostile in (None, "", "d360:", prefix, first + "x", first + "9" * 30, prefix + "\u0661"):
        assert row_of_tag(hostile, prefix) is None


# -- the property ----------------------------------------------------------------------------

# Three sent rows (statuses by wamid) and two unknown ones (named only by their tag, some
# statuses without it). The same statuses in any order, duplicated, batched, before or after
# the sender's answers, give the same report.
SENT = {"s0": "wamid.s0", "s1": "wamid.s1", "s2": "wamid.s2"}
LOST = {"u0": "wamid.u0", "u1": "wamid.u1"}
STATUSES = [
    update("wamid.s0", "sent"),
    update("wamid.s0", "read"),
    update("wamid.s1", "delivered"),
    update("wamid.s1", "failed", code=131049),
    update("wamid.s2", "failed", code=131026),
    update("wamid.s2", "sent"),
    update("wamid.u0", "sent", tag="<u0>"),  # the tag the store gives u0's send
    update("wamid.u0", "read"),
    update("wamid.u1", "failed", code=131047),
    update("wamid.u1", "delivered", tag="<u1>"),
    update("wamid.none", "delivered"),  # an orphan for good
]


async def replay(folder: Path, order: list[int], cuts: list[int], answered_at: int) -> Any:
    path = folder / "b.db"
    async with BroadcastStore(path) as sender, BroadcastStore(path) as receiver:
        sender.begin(CAMPAIGN)
        for key in [*SENT, *LOST]:
            assert await sender.claim(key) is None
        sender._commit()
        tags = {f"<{key}>": sender.callback_for(key) for key in LOST}
        statuses = [
            attrs.evolve(s, callback_data=tags.get(s.callback_data or "", s.callback_data))
            for s in STATUSES
        ]
        batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
        for index in range(len(batches) + 1):
            if index == min(answered_at, len(batches)):  # the sends' answers come in
                for key, wamid in SENT.items():
                    await sender.settle(key, "sent", message_id=wamid)
                for key in LOST:
                    await sender.settle(key, "unknown")
                sender._commit()
            if index < len(batches):
                await receiver.record_webhook(note(*(statuses[i] for i in batches[index])))
        sender.finish()
        return counts(await receiver.report(CAMPAIGN))


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[int], list[int], int]:
    order = draw(st.permutations(range(len(STATUSES))))
    extra = draw(st.lists(st.integers(0, len(STATUSES) - 1), max_size=6))
    for item in extra:  # a redelivery, somewhere later
        order.insert(draw(st.integers(0, len(order))), item)
    cuts = sorted(set(draw(st.lists(st.integers(1, len(order) - 1), max_size=5))))
    return order, cuts, draw(st.integers(0, len(cuts) + 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_order_duplicates_and_batching_do_not_change_the_report(
    plan: tuple[list[int], list[int], int],
) -> None:
    with tempfile.TemporaryDirectory() as calm, tempfile.TemporaryDirectory() as wild:
        expected = asyncio.run(replay(Path(calm), list(range(len(STATUSES))), [], 1))
        got = asyncio.run(replay(Path(wild), *plan))
    assert got == expected
    assert (expected["delivered"], expected["read"], expected["undelivered"]) == (4, 2, 3)
    assert (expected["unknown_settled"], expected["orphans"], expected["sent"]) == (2, 1, 5)


# -- through a receiver, across processes, and an older file ---------------------------------


async def test_receiver_with_the_store_restarts_losing_nothing_dispatching_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    await seed(path, {f"k{n}": f"wamid.{n}" for n in range(20)})
    bodies = [
        encode(cloud([status(f"wamid.{n}", v) for v in ("sent", "delivered", "read")]))
        for n in range(20)
    ]
    seen: list[tuple[str, str]] = []
    for start, stop in ((0, 12), (0, 20)):  # after the restart, 360dialog redelivers it all
        recorder = Recorder()
        async with BroadcastStore(path) as store:
            receiver = WebhookReceiver(store=store, on_status=recorder.on_status)
            async with serve(receiver) as client:
                for body in bodies[start:stop]:
                    answer = await client.post(PATH, data=body)
                    assert answer.status == 200
        seen += recorder.keys
    assert len(seen) == len(set(seen)) == 60  # every status once, none twice
    async with BroadcastStore(path) as store:
        report = await store.report()
    assert (report.read, report.delivered, report.orphans) == (20, 20, 0)


async def test_sender_and_receiver_share_one_store_in_one_loop(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    recorder = Recorder()
    plan = WebhookPlan(
        fail_ratio=0.2,
        codes=(131049,),
        shuffle=True,
        duplicate_ratio=0.3,
        early_ratio=0.3,
        max_batch=5,
        enforce_window=False,
        seed=7,
        sent_delay=0.0,
        delivered_delay=0.0,
        read_delay=0.0,
    )
    async with BroadcastStore(path) as store:
        receiver = WebhookReceiver(store=store, on_status=recorder.on_status)
        async with serve(receiver) as hooks:
            url = str(hooks.make_url(PATH))
            async with (
                FakeDialog360(throughput=None, webhook_url=url, webhooks=plan) as fake,
                Dialog360Client("k", base_url=fake.url, rate_limit=None) as client,
            ):
                where = Location(latitude=1, longitude=2)
                messages = [LocationMessage(to=f"+1650{n:07d}", location=where) for n in range(200)]
                summary = await BulkSender(client, journal=store, rate_limit=None).send_all(
                    messages, campaign=CAMPAIGN
                )
                await asyncio.wait_for(fake.webhooks_idle(), 30)
        report = await store.report()
    assert summary.sent == 200 and len(recorder.keys) == len(set(recorder.keys))
    failed = {s.message_id for s in recorder.statuses if s.status == "failed"}
    delivered = {s.message_id for s in recorder.statuses if s.status in ("delivered", "read")}
    assert report.accepted == report.messages == 200 and report.orphans == 0
    assert (report.undelivered, report.delivered) == (len(failed), len(delivered))
    assert 0 < report.undelivered < 200


WRITER = textwrap.dedent(
    """
    import asyncio, sqlite3, sys, time
    from dialog360_async import BroadcastStore
    from dialog360_async.webhooks import Notification, StatusUpdate

    async def main(path):
        peek = sqlite3.connect(path)
        done, deadline = set(), time.monotonic() + 30
        async with BroadcastStore(path) as store:  # no run: no send lock
            while len(done) < 200 and time.monotonic() < deadline:
                found = [w for (w,) in peek.execute(
                    "SELECT wamid FROM messages WHERE wamid IS NOT NULL ORDER BY id DESC "
                    "LIMIT 20") if w not in done][:min(5, 200 - len(done))]
                statuses = tuple(StatusUpdate(message_id=w, status=s, timestamp=1)
                                 for w in found for s in ("delivered", "read"))
                new = await store.record_webhook(Notification(statuses=statuses))
                done.update(s.message_id for s in new.statuses)
                await asyncio.sleep(0.005)
        print(len(done), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_another_process_records_webhooks_while_a_broadcast_runs(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    (tmp_path / "writer.py").write_text(WRITER)
    going = asyncio.Event()

    def seen(outcome: Outcome) -> None:
        if outcome.ok:
            going.set()

    async with (
        FakeDialog360(throughput=None, latency=0.002) as fake,
        Dialog360Client("k", base_url=fake.url, rate_limit=None) as client,
    ):
        where = Location(latitude=1, longitude=2)
        sender = BulkSender(client, concurrency=8, journal=path, on_outcome=seen)
        messages = (LocationMessage(to=f"+1650{n:07d}", location=where) for n in range(5000))
        task = asyncio.create_task(sender.send_all(messages, campaign=CAMPAIGN))
        await asyncio.wait_for(going.wait(), timeout=30)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        writer = await asyncio.create_subprocess_exec(
            sys.executable, tmp_path / "writer.py", path, stdout=asyncio.subprocess.PIPE, env=env
        )
        out, _ = await asyncio.wait_for(writer.communicate(), timeout=60)
        assert not task.done()  # the broadcast was running all along
        summary = await asyncio.wait_for(task, timeout=60)
    assert writer.returncode == 0 and int(out) == 200
    assert summary.sent == 5000 and summary.stopped is None
    async with BroadcastStore(path) as store:
        report = await store.report()
    assert (report.accepted, report.read, report.orphans) == (5000, 200, 0)


V1 = (
    """CREATE TABLE messages (id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, key TEXT NOT NULL,
    run INTEGER, channel TEXT, recipient TEXT, state TEXT NOT NULL, outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, wamid TEXT, callback TEXT, delivery TEXT,
    error_code INTEGER, error_title TEXT, claimed_at REAL, settled_at REAL, delivery_at REAL)""",
    "CREATE UNIQUE INDEX messages_key ON messages (campaign, key)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, pid INTEGER, "
    "started_at REAL NOT NULL, finished_at REAL)",
    "INSERT INTO runs VALUES (1, 'old', 1, 1.0, 2.0)",
    "INSERT INTO messages (campaign, key, run, state, outcome, wamid, claimed_at, settled_at) "
    "VALUES ('old', 'a', 1, 'settled', 'sent', 'wamid.a', 1.0, 1.5), "
    "('old', 'b', 1, 'settled', 'failed', NULL, 1.0, 1.5), "
    "('old', 'c', 1, 'settled', 'unknown', NULL, 1.0, 1.5)",
    "PRAGMA application_id = 1144206896",
    "PRAGMA user_version = 1",
)


async def test_a_schema_3_file_loses_the_index_on_seen_at(tmp_path: Path) -> None:
    path = tmp_path / "three.db"
    async with BroadcastStore(path) as store:
        await store.record_webhook(note(update("wamid.a", "read")))
    with contextlib.closing(sqlite3.connect(path)) as db:  # as schema 3 left it
        db.execute("CREATE INDEX webhook_seen_at ON webhook_seen (seen_at)")
        db.execute("PRAGMA user_version = 3")
        db.commit()
    async with BroadcastStore(path) as store:
        again = await store.record_webhook(note(update("wamid.a", "read")))
    with contextlib.closing(sqlite3.connect(path)) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert (version, "webhook_seen_at" in indexes, again.statuses) == (4, False, ())


async def test_a_schema_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for statement in V1:
            db.execute(statement)
        db.commit()
    async with BroadcastStore(path) as store:
        await store.record_webhook(note(update("wamid.a", "read")))
        before = await store.report()
        store.begin()  # resumes "old": the failed key is sent again, with its tag
        fates = [await store.claim(key) for key in "abc"]
        await store.settle("b", "sent", message_id="wamid.b")
        store.finish()
        tag = tag_of(path, "b", "old")
        await store.record_webhook(note(update("wamid.b2", "delivered", tag=tag)))
        after = await store.report()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"webhook_seen", "orphans", "messages_wamid", "store_info"} <= tables
    assert (before.campaign, before.messages, before.read, before.rejected) == ("old", 3, 1, 1)
    assert fates == ["sent", None, "unknown"]
    assert (after.accepted, after.delivered, after.read) == (2, 2, 1)
    async with BroadcastStore(path) as store:  # opening again changes nothing
        assert counts(await store.report()) == counts(after)
