"""End to end: a 10,000-message broadcast through `BulkSender` into a broadcast store, the fake's
status webhooks (failures of mixed codes, duplicates, batches, shuffled order, statuses before
the send's answer) posted to a real `WebhookReceiver` on 127.0.0.1 into the same store, and
connection faults that leave sends ``unknown``. The store's delivery report must agree, message
for message, with what the fake decided."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from dialog360_async import BroadcastStore, BulkSender, Dialog360Client, Outcome
from dialog360_async._bulk import Item
from dialog360_async.testing import FakeDialog360, FakeResponse, WebhookPlan
from dialog360_async.webhooks import WebhookReceiver

from .test_bulk import messages, number

TOTAL = 10_000
KEYS = ("e2e-channel-1", "e2e-channel-2")
CODES = (131026, 131049, 131050, 130472)
# Processed by the fake (its statuses go out), but the answer is lost or unreadable: unknown.
PROCESSED = (
    FakeResponse(status=500, process=True),
    FakeResponse(close=True, process=True),
    FakeResponse(status=200, body=b"<html>upstream ok</html>", process=True),
)
# Read, then the connection dropped, never processed: unknown, and no status will ever come.
LOST = FakeResponse(close=True)
EVERY = 1000  # outcomes between two rounds of faults
ROUNDS = TOTAL // EVERY - 1  # the last round still has a thousand sends to take its faults
# Refused at send time (code 100); all answered long before the first faults are queued, so
# no scripted answer takes the place of their refusal.
REJECTED = [number(n) for n in range(5, EVERY // 2, 25)]
PLAN = WebhookPlan(
    fail_ratio=0.02,
    codes=CODES,
    undelivered_ratio=0.01,
    read_ratio=0.5,
    seed=2026,
    shuffle=True,
    jitter=0.05,
    early_ratio=0.03,
    duplicate_ratio=0.05,
    max_batch=100,
    linger=0.02,
)


@asynccontextmanager
async def receiving(store: BroadcastStore) -> AsyncIterator[tuple[str, WebhookReceiver]]:
    receiver = WebhookReceiver(store=store)
    runner = web.AppRunner(receiver.app("/webhook"), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/webhook", receiver
    finally:
        await runner.cleanup()


def spread(clients: list[Dialog360Client]) -> Iterator[Item]:
    for n, message in enumerate(messages(TOTAL)):
        yield clients[n % len(clients)], message


async def test_10k_broadcast_report_agrees_with_the_fake(tmp_path: Path) -> None:
    started = time.monotonic()
    outcomes: list[Outcome] = []
    async with BroadcastStore(tmp_path / "e2e.db") as store, receiving(store) as (url, receiver):
        fake = FakeDialog360(
            api_keys=KEYS,
            throughput=None,
            record_requests=False,
            engage_all=True,
            webhook_url=url,
            webhooks=PLAN,
        )
        async with fake:
            for to in REJECTED:
                fake.fail_recipient(to, code=100, message="Invalid parameter")

            def faults(outcome: Outcome) -> None:
                outcomes.append(outcome)
                if len(outcomes) % EVERY == 0 and len(outcomes) // EVERY <= ROUNDS:
                    fake.script("POST", "/messages", *PROCESSED, LOST)

            clients = [Dialog360Client(k, base_url=fake.url, rate_limit=None) for k in KEYS]
            try:
                sender = BulkSender(
                    concurrency=64, rate_limit=None, journal=store, on_outcome=faults
                )
                summary = await asyncio.wait_for(
                    sender.send_all(spread(clients), campaign="e2e"), timeout=120
                )
            finally:
                for client in clients:
                    await client.close()
            sent_at = time.monotonic()
            await asyncio.wait_for(fake.webhooks_idle(), timeout=60)
            delivery, hooks = fake.delivery, fake.stats()["webhooks"]
            assert not fake.duplicates()  # no recipient got a message twice
        report = await store.report("e2e", horizon=0.0)
        doubt = list(store.in_doubt("e2e"))
    elapsed = time.monotonic() - started

    status = Counter(o.status for o in outcomes)
    unknown_sends = ROUNDS * (len(PROCESSED) + 1)
    assert len(outcomes) == TOTAL and summary.sent == status["sent"]
    assert status == {
        "sent": TOTAL - unknown_sends - len(REJECTED),
        "unknown": unknown_sends,
        "failed": len(REJECTED),
    }
    fates = delivery.counts()
    # Every message in exactly one kind; the unknown ones the fake processed are settled.
    kinds = (report.accepted, report.unknown_settled, report.unknown, report.rejected)
    assert kinds == (status["sent"], ROUNDS * len(PROCESSED), ROUNDS, len(REJECTED))
    assert report.cancelled == report.pending == report.orphans == 0
    assert sum(kinds) == report.messages == TOTAL
    assert report.sent == len(delivery) == TOTAL - ROUNDS - len(REJECTED)
    # The delivery funnel is what the fake decided.
    assert report.delivered == fates["delivered"] + fates["read"]
    assert report.read == fates["read"]
    assert report.undelivered == fates["failed"]
    assert report.unconfirmed == fates["sent"]  # those stay "sent" for good
    by_code = {(f.status, f.code): f.count for f in report.failures}
    assert by_code == {
        ("failed", 100): len(REJECTED),
        **{("undelivered", code): n for code, n in delivery.failures().items()},
    }
    assert set(delivery.failures()) == set(CODES)
    # Still in doubt: exactly the sends the fake never processed (their recipients got none).
    assert len(doubt) == ROUNDS
    assert all(fake.sends[str(row["recipient"]).lstrip("+")] == 0 for row in doubt)
    # The webhooks were as rough as planned, and none was lost.
    assert not delivery.lost and hooks["gave_up"] == 0
    assert hooks["duplicates"] > 0 and hooks["early"] > 0 and hooks["posts"] < hooks["statuses"]
    assert receiver.stats.duplicates >= hooks["duplicates"]
    assert receiver.stats.store_errors == receiver.stats.deferred == 0
    print(
        f"\ne2e: {TOTAL} messages in {elapsed:.1f} s (sends {sent_at - started:.1f} s), "
        f"sent {report.sent} ({report.accepted} answered, {report.unknown_settled} of "
        f"{unknown_sends} unknown settled by a status, {report.unknown} still unknown), "
        f"rejected {report.rejected}, delivered {report.delivered}, read {report.read}, "
        f"never delivered {report.unconfirmed}, undelivered {report.undelivered} by code "
        f"{dict(sorted(delivery.failures().items()))}; webhooks: {hooks['posts']} POSTs, "
        f"{hooks['statuses']} statuses, {hooks['duplicates']} duplicates, "
        f"{hooks['early']} early"
    )
