"""The journal makes broadcasts resumable: sent ones are skipped, in-doubt ones never resent,
a torn last line is tolerated, and a SIGKILL mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections import Counter
from pathlib import Path

from dialog360_async import BulkSender, Dialog360Client, message_key
from dialog360_async._journal import Journal
from dialog360_async.testing import FakeDialog360, FakeResponse

from .test_bulk import FAST, messages, number

KEY = "journal-test-key-0123456789"


async def test_records_attempt_then_result(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    async with FakeDialog360(throughput=None) as fake, Dialog360Client(KEY, base_url=fake.url) as c:
        summary = await BulkSender(c, rate_limit=None, journal=path).send_all(messages(20))
    assert summary.sent == 20
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 40
    states = Counter(r["state"] for r in records)
    assert states == {"attempting": 20, "sent": 20}
    keys = {message_key(m) for m in messages(20)}
    assert {r["key"] for r in records} == keys
    for key in keys:  # attempting is written before the result
        mine = [r["state"] for r in records if r["key"] == key]
        assert mine == ["attempting", "sent"]
    assert all(r["id"].startswith("wamid.") for r in records if r["state"] == "sent")
    assert KEY not in path.read_text()


async def test_resume_skips_sent_never_resends_unknown_retries_failed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    async with FakeDialog360(throughput=None) as fake:
        fake.fail_recipient(number(5), code=131026, times=1)
        fake.fail_recipient(number(6), code=131026, times=1)
        fake.script(
            "POST",
            "/messages",
            FakeResponse(close=True, process=True),
            FakeResponse(status=504, process=True),
        )
        async with Dialog360Client(KEY, base_url=fake.url, retry=FAST) as client:
            first = await BulkSender(client, concurrency=1, rate_limit=None, journal=path).send_all(
                messages(30)
            )
            second = await BulkSender(
                client, concurrency=4, rate_limit=None, journal=path
            ).send_all(messages(30))
    assert (first.sent, first.failed, first.unknown) == (26, 2, 2)
    assert (second.skipped, second.unknown, second.sent) == (26, 2, 2)
    assert fake.duplicates() == {}
    assert sum(fake.sends.values()) == 30  # the 2 in-doubt ones had reached the server


def test_torn_last_line_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"key":"a","state":"sent","id":"wamid.1"}\n{"key":"b","state":"atte')
    journal = Journal(path)
    assert journal.torn_lines == 1
    assert journal.entries["a"].state == "sent"
    assert "b" not in journal.entries
    journal.attempting("c")
    asyncio.run(journal.close())
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == "c"  # the torn line was sealed, not merged
    reopened = Journal(path)
    assert reopened.entries["c"].state == "attempting"
    asyncio.run(reopened.close())


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage

    async def main(url, journal, total):
        msgs = (LocationMessage(to=f"+1650{n:07d}", location=Location(latitude=1, longitude=2))
                for n in range(total))
        async with Dialog360Client("crash-key", base_url=url) as client:
            summary = await BulkSender(client, concurrency=8, rate_limit=400.0,
                                       journal=journal).send_all(msgs)
        print(summary.sent, summary.skipped, summary.unknown, summary.failed,
              summary.cancelled, summary.total, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    total = 1500
    script = tmp_path / "broadcast.py"
    script.write_text(SCRIPT)
    journal = tmp_path / "run.jsonl"
    async with FakeDialog360(throughput=None, record_requests=False) as fake:
        args = [sys.executable, str(script), fake.url, str(journal), str(total)]
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        for _ in range(3000):  # bounded: ~30 s at most
            if sum(fake.sends.values()) >= total // 3:
                break
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        sent_before = sum(fake.sends.values())
        assert 0 < sent_before < total

        resumed = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(resumed.communicate(), timeout=60)
        assert resumed.returncode == 0
    sent, skipped, unknown, failed, cancelled, seen = map(int, out.split())
    assert seen == total  # every input ends with one outcome
    assert failed == cancelled == 0
    assert sent + skipped + unknown == total
    assert fake.duplicates() == {}  # no recipient was sent twice across both runs
    assert unknown <= 8  # at most the in-flight sends at the kill are in doubt
    print(
        f"\ncrash-resume: killed after {sent_before} sends; resumed: sent={sent} "
        f"skipped={skipped} unknown={unknown}; server total={sum(fake.sends.values())}"
    )
    assert sent + skipped <= sum(fake.sends.values()) <= sent + skipped + unknown
