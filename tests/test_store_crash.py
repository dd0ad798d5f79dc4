"""The store across real processes: a second sender is refused at once and sends nothing, a
SIGKILLed sender's lock dies with it, and a full disk (RLIMIT_FSIZE) stops the run without
sending what could not be recorded and without losing what was."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage, Outcome
from dialog360_async.testing import FakeDialog360

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from dialog360_async import BulkSender, Dialog360Client, JournalError, Location, LocationMessage

    def say(**fields):
        print(json.dumps(fields), flush=True)

    async def main(url, journal, key, total, rate, limit):
        if limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ
        msgs = (LocationMessage(to=f"+1650{n:07d}", location=Location(latitude=1, longitude=2))
                for n in range(total))

        def seen(o):
            say(to=o.message.to, status=o.status, error=type(o.error).__name__ if o.error else None)

        async with Dialog360Client(key, base_url=url, rate_limit=None) as client:
            sender = BulkSender(client, concurrency=8, rate_limit=rate or None, journal=journal,
                                on_outcome=seen)
            try:
                summary = await sender.send_all(msgs)
            except JournalError as exc:
                say(refused=str(exc))
                sys.exit(3)
        say(summary={name: getattr(summary, name) for name in
                     ("total", "sent", "failed", "unknown", "skipped", "cancelled", "stopped")})

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])))
    """
)


def number(n: int) -> str:
    return f"+1650{n:07d}"


async def start(
    tmp_path: Path, url: str, journal: Path, key: str, total: int, rate: int = 0, limit: int = 0
) -> asyncio.subprocess.Process:
    script = tmp_path / "broadcast.py"
    script.write_text(SCRIPT)
    args = [str(script), url, str(journal), key, str(total), str(rate), str(limit)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env
    )


async def lines(proc: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_second_process_refused_then_lock_dies_with_the_first(tmp_path: Path) -> None:
    journal = tmp_path / "broadcast.db"
    async with FakeDialog360(throughput=None) as fake:
        first = await start(tmp_path, fake.url, journal, "first-key", 100_000, rate=50)
        try:
            assert first.stdout is not None
            await asyncio.wait_for(first.stdout.readline(), timeout=30)  # it is sending
            second = await start(tmp_path, fake.url, journal, "second-key", 50)
            refused = await lines(second)
            assert second.returncode == 3 and first.returncode is None  # it did not wait
            assert "in use by another sender" in refused[-1]["refused"]
            assert f"(process {first.pid})" in refused[-1]["refused"]
            assert {r.channel for r in fake.requests} == {"channel-1"}  # none from the second
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        sent_by_first = sum(fake.sends.values())
        third = await start(tmp_path, fake.url, journal, "second-key", 300)
        out = await lines(third)
    assert third.returncode == 0, out
    summary = out[-1]["summary"]
    assert summary["total"] == 300 and summary["failed"] == summary["cancelled"] == 0
    assert 0 < sent_by_first < 300
    assert summary["skipped"] + summary["unknown"] >= sent_by_first  # every send was recorded
    assert summary["unknown"] <= 8  # at most its workers' claims were left in doubt
    assert fake.duplicates() == {}


WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
    written = 0
    deadline = time.monotonic() + 30
    while written < 200 and time.monotonic() < deadline:
        with db:  # what a webhook receiver does: record delivery statuses as they come
            written += db.execute(
                "UPDATE messages SET delivery = 'delivered', delivery_at = ? "
                "WHERE id IN (SELECT id FROM messages WHERE outcome = 'sent' "
                "AND delivery IS NULL LIMIT 5)",
                (time.time(),),
            ).rowcount
        time.sleep(0.005)
    print(written, flush=True)
    """
)


async def test_another_process_writes_the_store_while_a_broadcast_runs(tmp_path: Path) -> None:
    journal = tmp_path / "broadcast.db"
    (tmp_path / "writer.py").write_text(WRITER)
    going = asyncio.Event()

    def seen(outcome: Outcome) -> None:
        if outcome.ok:
            going.set()

    async with FakeDialog360(throughput=None, latency=0.002) as fake:
        async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
            where = Location(latitude=1, longitude=2)
            sender = BulkSender(client, concurrency=8, journal=journal, on_outcome=seen)
            messages = (LocationMessage(to=number(n), location=where) for n in range(5000))
            task = asyncio.create_task(sender.send_all(messages))
            await asyncio.wait_for(going.wait(), timeout=30)
            writer = await asyncio.create_subprocess_exec(
                sys.executable, tmp_path / "writer.py", journal, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await asyncio.wait_for(writer.communicate(), timeout=60)
            assert not task.done()  # the broadcast was running all along
            summary = await asyncio.wait_for(task, timeout=60)
    # Its writes went through meanwhile (a batch may find fewer than 5 rows: 200 or a few more).
    assert writer.returncode == 0 and 200 <= int(out) < 205
    assert summary.sent == 5000 and summary.stopped is None  # and the sender's too
    assert fake.duplicates() == {}


async def test_full_disk_stops_the_run_and_sends_nothing_unrecorded(tmp_path: Path) -> None:
    journal, total = tmp_path / "broadcast.db", 3000
    async with FakeDialog360(throughput=None, record_requests=False) as fake:
        proc = await start(tmp_path, fake.url, journal, "disk-key", total, limit=256 * 1024)
        out = await lines(proc)
        assert proc.returncode == 0, out  # it finished, with a summary
        first = out[-1]["summary"]
        outcomes = out[:-1]
        sends_before = Counter(fake.sends)
        async with Dialog360Client("disk-key", base_url=fake.url, rate_limit=None) as client:
            where = Location(latitude=1, longitude=2)
            sender = BulkSender(client, concurrency=8, rate_limit=None, journal=journal)
            resumed = await sender.send_all(
                LocationMessage(to=number(n), location=where) for n in range(total)
            )
    print(f"\nfull disk: first run {first}; resumed {resumed.sent} sent, {resumed.skipped} skipped")
    assert first["stopped"] and "could not write" in first["stopped"]
    assert first["total"] == len(outcomes) < total  # intake stopped
    unrecorded = [o for o in outcomes if o["error"] == "JournalError"]
    assert any(o["status"] == "failed" for o in unrecorded)  # the claim that could not be written
    assert {o["status"] for o in unrecorded} <= {"failed", "cancelled"}
    for outcome in unrecorded:
        assert outcome["to"].lstrip("+") not in sends_before  # never sent
    assert {o["status"] for o in outcomes} <= {"sent", "failed", "cancelled"}
    sent_first = {o["to"] for o in outcomes if o["status"] == "sent"}
    assert {to.lstrip("+") for to in sent_first} == set(sends_before)
    # Resumed without the limit: nothing sent twice, everything accounted for.
    assert fake.duplicates() == {}
    assert resumed.total == total and resumed.failed == resumed.cancelled == 0
    # Every earlier send was recorded: skipped, or in doubt if its settle was not written.
    # Beyond those, at most one message per worker is in doubt: claimed ahead, never sent.
    assert len(sent_first) <= resumed.skipped + resumed.unknown <= len(sent_first) + 8
