"""Scenario 5: what the resumable journal (a BroadcastStore, one SQLite file per broadcast)
costs, as a paired msg/s ratio.

An informational row takes the network away: a client whose sends are answered at once (the
body still built, no HTTP), so that the CPU a message costs with and without the journal is
the sender's own. It is steadier than the msg/s ratio on a shared machine; in the ratio the same
work costs more (1.5 to 2.5 times as much on 2026-12-04).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

from dialog360_async import BulkSender, Dialog360Client, Message, SentMessage

from ._common import KEY, location_messages, recipients
from ._stats import Result, Row, Sample, interleave, log, measure, median, paired_ratio, verdict

CONCURRENCY = 64
TARGET = 0.8
OFFLINE_COUNT, OFFLINE_PAIRS = 4_000, 7


class _Answered(Dialog360Client):
    """Sends answered at once: what a message costs is the sender's work, not the network's."""

    _serial = itertools.count()

    async def _deliver(self, message: Message, retry: Any = None, **options: Any) -> SentMessage:
        self._message_body(message, options.get("callback_data"))  # built, tag checked
        await asyncio.sleep(0)  # one loop step, as an answer takes
        return SentMessage(message_id=f"wamid.BENCH{next(self._serial)}", wa_id=message.to[1:])


async def _pairs(
    client: Dialog360Client, folder: str, count: int, pairs: int, label: str
) -> dict[str, list[Sample]]:
    """``pairs`` interleaved BulkSender runs of ``count`` messages without and with the journal."""
    to = recipients(count)  # distinct recipients: journal keys must be unique within a run
    serial = itertools.count()

    async def send_all(journal: bool) -> int:
        # A fresh store every run, or everything would be skipped.
        path = Path(folder, f"broadcast-{next(serial)}.db") if journal else None
        sender = BulkSender(client, concurrency=CONCURRENCY, rate_limit=None, journal=path)
        summary = await sender.send_all(location_messages(to, count))
        if path is not None:
            path.unlink()  # its -wal and -shm files go when the store closes
        if summary.sent != count:
            raise RuntimeError(f"{label} run failed:\n{summary}")
        return count

    runs = {
        "off": lambda: measure(lambda: send_all(False)),
        "on": lambda: measure(lambda: send_all(True)),
    }
    return await interleave(runs, pairs, label)


async def run(url: str, quick: bool) -> Result:
    count, pairs = (5_000, 5) if quick else (20_000, 9)
    result = Result()
    with tempfile.TemporaryDirectory(prefix="d360-bench-") as folder:
        log(f"journal: c={CONCURRENCY}, {count} messages per run, {pairs} pairs")
        async with Dialog360Client(KEY, base_url=url, rate_limit=None) as client:
            samples = await _pairs(client, folder, count, pairs, "journal")
        async with _Answered(KEY, base_url="http://127.0.0.1:9", rate_limit=None) as answered:
            offline = await _pairs(answered, folder, OFFLINE_COUNT, OFFLINE_PAIRS, "no network")
    off, on = samples["off"], samples["on"]
    ratio = paired_ratio([s.rate for s in on], [s.rate for s in off])
    off_rate, on_rate = median([s.rate for s in off]), median([s.rate for s in on])
    off_us, on_us = (median([s.cpu_us for s in offline[name]]) for name in ("off", "on"))
    result.details = {"off_msg_s": off_rate, "on_msg_s": on_rate, "ratio": ratio}
    result.details["offline_cpu_us"] = {"off": off_us, "on": on_us}
    result.metrics["journal_throughput_ratio"] = ratio
    shown = f"off {off_rate:,.0f} msg/s, on {on_rate:,.0f} msg/s: {ratio:.3f}x"
    case = f"c={CONCURRENCY} journal/no journal"
    result.rows.append(Row("5 journal", case, shown, f">= {TARGET}", verdict(ratio >= TARGET)))
    shown = f"off {off_us:.1f} us, on {on_us:.1f} us: +{on_us - off_us:.1f} us"
    result.rows.append(Row("5 journal", "CPU/msg, sends answered at once (info)", shown))
    return result
