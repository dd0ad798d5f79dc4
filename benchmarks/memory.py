"""Scenario 3: 1,000,000 messages from a generator through BulkSender in flat memory.

Run in a fresh subprocess (``python -m benchmarks.memory COUNT``) so that the peak RSS is its
own. The client answers in-process, but everything above the HTTP exchange is real: the
sender's queues and workers, the body built for each message, the retry middleware with its
rate limiter (at a rate too high to wait), parsing the answer, and no journal.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from ._server import ROOT
from ._stats import Result, Row, log, verdict

PEAK_TARGET_MB = 100.0
FLAT_GROWTH_MB = 5.0  # RSS may grow by at most this much from the checkpoint to the end
CONCURRENCY = 32
LIMIT = 1e9  # messages per second: the limiter runs on every send, and never waits
CHILD_TIMEOUT = 900.0


def rss_mb() -> float:
    """Resident set size now, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


async def _child(count: int) -> dict[str, Any]:
    from dialog360_async import BulkSender, Dialog360Client, Location, LocationMessage, Outcome
    from dialog360_async._attempt import Reply

    answer = Reply(200, {}, b"", True)
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+16500000000", "wa_id": "16500000000"}],
        "messages": [{"id": "wamid.stub"}],
    }

    async def attempt(remaining: float | None) -> Reply:
        await asyncio.sleep(0)
        return answer

    class InProcessClient(Dialog360Client):
        """Replaces only the HTTP exchange; the retry middleware of each send still runs."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._request = self._exchange  # the client calls its transport through this

        async def _exchange(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            retry = kwargs.get("retry")
            if retry is not None:
                await retry(attempt, f"{method} {path}")
            read = kwargs.get("read")
            return 200, body if read is None else read(body)

    where = Location(latitude=52.5163, longitude=13.3777, name="Brandenburg Gate")

    def generate() -> Iterator[LocationMessage]:
        for n in range(count):
            yield LocationMessage(to=f"+1650{n:07d}", location=where)

    checkpoint = count // 10
    seen = {"done": 0, "rss_checkpoint_mb": 0.0}

    def watch(outcome: Outcome) -> None:
        seen["done"] += 1
        if seen["done"] == checkpoint:
            seen["rss_checkpoint_mb"] = rss_mb()

    started = time.perf_counter()
    async with InProcessClient("k", base_url="http://127.0.0.1:1") as client:
        sender = BulkSender(client, concurrency=CONCURRENCY, rate_limit=LIMIT, on_outcome=watch)
        summary = await sender.send_all(generate())
    return {
        "messages": count,
        "sent": summary.sent,
        "seconds": time.perf_counter() - started,
        "checkpoint": checkpoint,
        "rss_checkpoint_mb": seen["rss_checkpoint_mb"],
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "vm_hwm_mb": hwm_mb(),
    }


def hwm_mb() -> float:
    """Peak RSS of this process's own memory since exec (VmHWM), a cross-check."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def measure(count: int, module: str = "benchmarks.memory") -> dict[str, Any]:
    """Run ``python -m module count`` as a fresh child and return what it printed last (JSON).

    Linux carries a process's ru_maxrss across exec, and a child forked from this (large)
    process starts with this one's RSS: a small shell forks the child instead.
    """
    child = [sys.executable, "-m", module, str(count)]
    command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *child]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} child failed: {done.stderr[-2000:]}")
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def run(quick: bool) -> Result:
    count = 200_000 if quick else 1_000_000
    log(f"memory: {count:,} messages through BulkSender in a fresh process")
    got = measure(count)
    log(f"  {got}")
    growth = got["rss_end_mb"] - got["rss_checkpoint_mb"]
    got["growth_mb"] = growth
    got["growth_bytes_per_message"] = growth * 1e6 / (count - got["checkpoint"])
    result = Result(details=got)
    result.metrics["bulk_1m_peak_rss_mb"] = got["peak_rss_mb"]
    peak = got["peak_rss_mb"]
    ok = got["sent"] == count and peak <= PEAK_TARGET_MB
    rate = count / got["seconds"]
    shown = f"peak {peak:.1f} MB ({count:,} msgs in {got['seconds']:.1f} s, {rate:,.0f} msg/s)"
    result.rows.append(
        Row("3 memory", f"{count:,} msgs peak RSS", shown, f"<= {PEAK_TARGET_MB:g} MB", verdict(ok))
    )
    case = f"RSS at {got['checkpoint']:,} vs {count:,}"
    shown = f"{got['rss_checkpoint_mb']:.1f} MB -> {got['rss_end_mb']:.1f} MB ({growth:+.1f} MB)"
    flat = growth <= FLAT_GROWTH_MB
    result.rows.append(
        Row("3 memory", case, shown, f"flat (<= +{FLAT_GROWTH_MB:g} MB)", verdict(flat))
    )
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_child(int(sys.argv[1])))))
