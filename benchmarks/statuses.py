"""Scenario: 1,000,000 status webhooks into a BroadcastStore in flat memory.

Run in a fresh subprocess (``python -m benchmarks.statuses COUNT``) so that the RSS is its own.
Each status is a real-shaped Cloud webhook body (``benchmarks._load``, a distinct wamid each),
read by ``parse_webhook`` and recorded by ``store.record_webhook``, BATCH calls at a time, which
share one transaction as concurrent POSTs would. No send names these wamids, so each one is
kept as an orphan status next to its dedup key: both tables grow by a row a status, on disk.
RSS is read after the checkpoint batch (a tenth of the statuses) and at the end.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._load import body
from ._stats import Result, Row, log, verdict
from .memory import hwm_mb, measure, peak_rss_mb, rss_mb

FLAT_GROWTH_MB = 20.0
BATCH = 250  # record_webhook calls in flight at once (one commit)


async def _ingest(path: Path, count: int) -> dict[str, Any]:
    from dialog360_async import BroadcastStore
    from dialog360_async.webhooks import parse_webhook

    checkpoint = count // 10
    fresh = 0
    rss_checkpoint = 0.0
    started = time.perf_counter()
    async with BroadcastStore(path) as store:
        for start in range(0, count, BATCH):
            numbers = range(start, min(count, start + BATCH))
            recorded = await asyncio.gather(
                *(store.record_webhook(parse_webhook(body("S", n))) for n in numbers)
            )
            fresh += sum(len(n.statuses) for n in recorded)
            if start < checkpoint <= start + BATCH:
                rss_checkpoint = rss_mb()
        rss_end = rss_mb()
    return {
        "statuses": count,
        "fresh": fresh,
        "seconds": time.perf_counter() - started,
        "checkpoint": checkpoint,
        "rss_checkpoint_mb": rss_checkpoint,
        "rss_end_mb": rss_end,
        "peak_rss_mb": peak_rss_mb(),
        "vm_hwm_mb": hwm_mb(),
    }


def _child(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="d360-bench-") as folder:
        path = Path(folder, "statuses.db")
        got = asyncio.run(_ingest(path, count))
        with sqlite3.connect(path) as db:
            got["orphans"] = db.execute("SELECT count(*) FROM orphans").fetchone()[0]
            got["dedup_keys"] = db.execute("SELECT count(*) FROM webhook_seen").fetchone()[0]
        db.close()
        got["file_mb"] = sum(p.stat().st_size for p in Path(folder).iterdir()) / 1e6
    return got


def run(quick: bool) -> Result:
    count = 200_000 if quick else 1_000_000
    log(f"statuses: {count:,} status webhooks into a BroadcastStore in a fresh process")
    got = measure(count, "benchmarks.statuses")
    log(f"  {got}")
    growth = got["rss_end_mb"] - got["rss_checkpoint_mb"]
    got["growth_mb"] = growth
    result = Result(details=got)
    result.metrics["statuses_rss_growth_mb"] = growth
    result.metrics["statuses_per_s"] = count / got["seconds"]
    ok = growth <= FLAT_GROWTH_MB and got["fresh"] == got["orphans"] == got["dedup_keys"] == count
    case = f"RSS at {got['checkpoint']:,} vs {count:,} statuses"
    shown = (
        f"{got['rss_checkpoint_mb']:.1f} MB -> {got['rss_end_mb']:.1f} MB ({growth:+.1f} MB; "
        f"{count / got['seconds']:,.0f} statuses/s, file {got['file_mb']:,.0f} MB)"
    )
    target = f"flat (<= +{FLAT_GROWTH_MB:g} MB)"
    result.rows.append(Row("statuses", case, shown, target, verdict(ok)))
    return result


if __name__ == "__main__":
    print(json.dumps(_child(int(sys.argv[1]))))
