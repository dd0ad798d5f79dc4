"""Scenario 5: what the resumable journal (a BroadcastStore, one SQLite file per broadcast)
costs, as a paired msg/s ratio."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from dialog360_async import BulkSender, Dialog360Client

from ._common import KEY, location_messages, recipients
from ._stats import Result, Row, interleave, log, measure, median, paired_ratio, verdict

CONCURRENCY = 64
TARGET = 0.8


async def run(url: str, quick: bool) -> Result:
    count, pairs = (5_000, 5) if quick else (20_000, 9)
    to = recipients(count)  # distinct recipients: journal keys must be unique within a run
    serial = itertools.count()
    result = Result()
    with tempfile.TemporaryDirectory(prefix="d360-bench-") as folder:
        async with Dialog360Client(KEY, base_url=url, rate_limit=None) as client:

            async def send_all(journal: bool) -> int:
                # A fresh store every run, or everything would be skipped.
                path = Path(folder, f"broadcast-{next(serial)}.db") if journal else None
                sender = BulkSender(client, concurrency=CONCURRENCY, rate_limit=None, journal=path)
                summary = await sender.send_all(location_messages(to, count))
                if path is not None:
                    path.unlink()  # its -wal and -shm files go when the store closes
                if summary.sent != count:
                    raise RuntimeError(f"journal run failed:\n{summary}")
                return count

            log(f"journal: c={CONCURRENCY}, {count} messages per run, {pairs} pairs")
            runs = {
                "off": lambda: measure(lambda: send_all(False)),
                "on": lambda: measure(lambda: send_all(True)),
            }
            samples = await interleave(runs, pairs, "journal")
    off, on = samples["off"], samples["on"]
    ratio = paired_ratio([s.rate for s in on], [s.rate for s in off])
    off_rate, on_rate = median([s.rate for s in off]), median([s.rate for s in on])
    result.details = {"off_msg_s": off_rate, "on_msg_s": on_rate, "ratio": ratio}
    result.metrics["journal_throughput_ratio"] = ratio
    shown = f"off {off_rate:,.0f} msg/s, on {on_rate:,.0f} msg/s: {ratio:.3f}x"
    case = f"c={CONCURRENCY} journal/no journal"
    result.rows.append(Row("5 journal", case, shown, f">= {TARGET}", verdict(ratio >= TARGET)))
    return result
