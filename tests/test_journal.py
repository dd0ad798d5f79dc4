"""The journal (a BroadcastStore) makes broadcasts resumable: sent ones are skipped, in-doubt ones
never resent, failed ones sent again, and a SIGKILL mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from dialog360_async import BulkSender, Dialog360Client, message_key
from dialog360_async.testing import FakeDialog360, FakeResponse

from .test_bulk import FAST, messages, number

KEY = "journal-test-key-0123456789"


def rows(path: Path) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM messages ORDER BY id"))


async def test_records_claim_then_result(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as c,
    ):
        sender = BulkSender(c, rate_limit=None, journal=path)
        summary = await sender.send_all(messages(20))
    assert summary.sent == 20
    assert summary.campaign is not None and summary.campaign == sender.campaign
    records = rows(path)
    assert {r["key"] for r in records} == {message_key(m) for m in messages(20)}
    for record in records:
        assert (record["state"], record["outcome"]) == ("settled", "sent")
        assert record["wamid"].startswith("wamid.")
        assert record["campaign"] == summary.campaign
        assert record["channel"] == "channel-1"
        assert record["recipient"] == record["key"].split(":")[0]
        assert record["attempts"] == 1
        assert record["claimed_at"] <= record["settled_at"]
        assert record["error_code"] is None and record["delivery"] is None
    assert len({r["run"] for r in records}) == 1
    assert len({r["wamid"] for r in records}) == 20
    files = [name for name in os.listdir(tmp_path) if name.startswith(path.name)]
    assert files == [path.name]  # no -wal, -shm or -lock left behind
    assert KEY.encode() not in path.read_bytes()


async def test_resume_skips_sent_never_resends_unknown_retries_failed(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    async with FakeDialog360(throughput=None) as fake:
        # 131009 (a bad parameter) is retried by a resume; 131026 would suppress the recipient
        # under the default campaign policy (test_reach.py).
        bad = "Parameter value is not valid"
        fake.fail_recipient(number(5), code=131009, message=bad, times=1)
        fake.fail_recipient(number(6), code=131009, message=bad, times=1)
        fake.script(
            "POST",
            "/messages",
            FakeResponse(close=True, process=True),
            FakeResponse(status=504, process=True),
        )
        async with Dialog360Client(KEY, base_url=fake.url, retry=FAST, rate_limit=None) as client:
            first = await BulkSender(client, concurrency=1, rate_limit=None, journal=path).send_all(
                messages(30)
            )
            failed = {r["recipient"]: r for r in rows(path) if r["outcome"] == "failed"}
            second = await BulkSender(
                client, concurrency=4, rate_limit=None, journal=path
            ).send_all(messages(30))
    assert (first.sent, first.failed, first.unknown) == (26, 2, 2)
    assert set(failed) == {number(5), number(6)}
    assert {r["error_code"] for r in failed.values()} == {131009}
    assert all("not valid" in r["error_title"] for r in failed.values())
    assert (second.skipped, second.unknown, second.sent) == (26, 2, 2)
    assert second.campaign == first.campaign  # running again resumes the same campaign
    assert fake.duplicates() == {}
    assert sum(fake.sends.values()) == 30  # the 2 in-doubt ones had reached the server
    outcomes = sorted(r["outcome"] for r in rows(path))
    assert outcomes == ["sent"] * 28 + ["unknown"] * 2


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage

    async def main(url, journal, total, rate):
        msgs = (LocationMessage(to=f"+1650{n:07d}", location=Location(latitude=1, longitude=2))
                for n in range(total))
        async with Dialog360Client("crash-key", base_url=url, rate_limit=None) as client:
            summary = await BulkSender(client, concurrency=8, rate_limit=rate or None,
                                       journal=journal).send_all(msgs)
        print(summary.sent, summary.skipped, summary.unknown, summary.failed,
              summary.cancelled, summary.total, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


@pytest.mark.parametrize(
    ("rate", "in_doubt"),
    [
        (400.0, 8),  # at most the sends in flight (claimed, waiting for a permit or an answer)
        (0.0, 16),  # unpaced, each worker also claims its next message before it sends
    ],
)
async def test_sigkill_mid_run_then_resume(tmp_path: Path, rate: float, in_doubt: int) -> None:
    total = 1500 if rate else 20_000
    script = tmp_path / "broadcast.py"
    script.write_text(SCRIPT)
    journal = tmp_path / "run.db"
    async with FakeDialog360(throughput=None, record_requests=False) as fake:
        args = [sys.executable, str(script), fake.url, str(journal), str(total), str(rate)]
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
    assert unknown <= in_doubt
    print(
        f"\ncrash-resume: killed after {sent_before} sends; resumed: sent={sent} "
        f"skipped={skipped} unknown={unknown}; server total={sum(fake.sends.values())}"
    )
    assert sent + skipped <= sum(fake.sends.values()) <= sent + skipped + unknown
