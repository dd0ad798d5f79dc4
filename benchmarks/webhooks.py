"""Scenario: webhook POSTs a second into ``WebhookReceiver(store=BroadcastStore(path))`` vs a
bare aiohttp handler that only answers 200.

``python -m benchmarks.webhooks [--quick]``. The servers share this process and its event loop
(asyncio's own, as a user's app would run it) on one CPU; the load generator
(``benchmarks._load``) is a process of its own, pinned to the other CPU, posting real-shaped
Cloud status webhooks (one status each, a distinct wamid each, sent/delivered/read and one in a
hundred failed) over CONCURRENCY keep-alive connections. Both receivers check an auth header
and parse; the store-backed one records each status in SQLite (dedup key and delivery merge,
group-committed) before its 200, into rows a send recorded for that wamid beforehand (untimed),
as a broadcast's own statuses would find them. The memory-store receiver is informational.

Each round runs bare, store, memory in turn, after one warm-up round, closed-loop (each
connection sends its next POST when its last one is answered); a rate is POSTs over the
generator's wall time from its first write to its last answer. Ratios are medians of the
rounds' ratios, of wall rates and (steadier on a shared machine) of rates per CPU second of this
process, the servers'. Ack latency is measured in one more, open-loop store run at TARGET_RATE
POSTs a second offered: the generator's time from writing a request to reading its answer
(closed-loop latency only restates the rate, by Little's law).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from dialog360_async import BroadcastStore
from dialog360_async.webhooks import WebhookReceiver

from ._load import PATH, TOKEN, wamid
from ._server import ROOT, cpus, pin
from ._stats import Result, Row, log, median, verdict

TARGET_RATE = 3_000.0
TARGET_RATIO = 0.6
TARGET_P50_MS = 5.0
TARGET_P99_MS = 50.0
CONCURRENCY = 32  # connections: enough to keep the bare handler's CPU busy
RUN_TIMEOUT = 600.0
_CAMPAIGN = "bench"


class Load:
    """The load generator process: one run at a time, on its own CPU."""

    def __init__(self, proc: asyncio.subprocess.Process, pinned: bool) -> None:
        self.proc = proc
        self.pinned = pinned

    @classmethod
    async def start(cls, cpu: int | None) -> Load:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks._load",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            limit=1 << 26,  # the answer line carries every latency of a run
        )
        return cls(proc, pin(proc.pid, cpu))

    async def _line(self) -> bytes:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), RUN_TIMEOUT)
        if not line:
            raise RuntimeError(f"the load generator stopped (exit {await self.proc.wait()})")
        return line

    async def post(
        self, port: int, run: str, count: int, rate: float | None = None
    ) -> dict[str, Any]:
        """One run: the generator's ``wall`` and ``cpu`` seconds, the ``server`` CPU seconds
        (this process's) and the ``latencies``."""
        assert self.proc.stdin is not None
        command = {"port": port, "run": run, "count": count, "concurrency": CONCURRENCY}
        if rate is not None:
            command["rate"] = rate
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        if (await self._line()).strip() != b"ready":
            raise RuntimeError("the load generator did not get ready")
        gc.collect()
        cpu = time.process_time()
        self.proc.stdin.write(b"go\n")
        line = await self._line()
        cpu = time.process_time() - cpu
        answer: dict[str, Any] = json.loads(line)
        answer["server"] = cpu
        return answer

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _bare(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _seed(store: BroadcastStore, run: str, count: int) -> None:
    """The sends a run's statuses name: a row settled ``sent`` with that wamid, each."""
    store.begin(_CAMPAIGN)
    keys = [f"{run}-{n}" for n in range(count)]
    for key in keys:
        store.claim_nowait(key, to=f"+{4917600000000 + int(key.rsplit('-', 1)[1])}")
    for key in keys:
        if store.confirm(key) is not None:
            raise RuntimeError(f"seeding {key} failed")
    for n, key in enumerate(keys):
        await store.settle(key, "sent", message_id=wamid(run, n))
    store.finish()


def _delivered(path: Path) -> tuple[int, int]:
    """``(rows with a delivery status or a failure, orphan statuses)`` in the store file."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT count(*) FROM messages WHERE delivery IS NOT NULL OR failed_at IS NOT NULL"
        ).fetchone()[0]
        orphans = db.execute("SELECT count(*) FROM orphans").fetchone()[0]
    db.close()
    return int(rows), int(orphans)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    return median([n / d for n, d in zip(numerators, denominators, strict=True)])


async def run(quick: bool, load_cpu: int | None = None) -> Result:
    """Measure; ``load_cpu`` is the CPU for the load generator (this process keeps its own)."""
    count, rounds, seconds = (3_000, 5, 2) if quick else (10_000, 7, 5)
    names = ("bare", "store", "memory")
    rates: dict[str, list[float]] = {name: [] for name in names}
    per_cpu: dict[str, list[float]] = {name: [] for name in names}
    server_busy: dict[str, list[float]] = {name: [] for name in names}
    load_busy: dict[str, list[float]] = {name: [] for name in names}
    closed: list[float] = []
    serial = itertools.count()
    with tempfile.TemporaryDirectory(prefix="d360-bench-") as folder:
        path = Path(folder, "webhooks.db")
        store = BroadcastStore(path)
        receivers = {
            "store": WebhookReceiver(store=store, auth_headers={"Authorization": TOKEN}),
            "memory": WebhookReceiver(auth_headers={"Authorization": TOKEN}),
        }
        bare_app = web.Application()
        bare_app.router.add_post(PATH, _bare)
        servers = [await _serve(bare_app)]
        servers += [await _serve(receiver.app(PATH)) for receiver in receivers.values()]
        ports = dict(zip(names, (port for _, port in servers), strict=True))
        load = await Load.start(load_cpu)
        log(
            f"webhooks: c={CONCURRENCY}, {count:,} POSTs per run, {rounds} rounds + 1 warm-up; "
            f"load generator {'on CPU ' + str(load_cpu) if load.pinned else 'not pinned'}"
        )
        try:
            for index in range(rounds + 1):
                shown = []
                for name in names:
                    run_id = f"R{next(serial):03d}"
                    if name == "store":
                        await _seed(store, run_id, count)
                    got = await load.post(ports[name], run_id, count)
                    wall, cpu = got["wall"], got["server"]
                    shown.append(
                        f"{name} {count / wall:,.0f}/s (server {cpu / wall:.0%}, "
                        f"load {got['cpu'] / wall:.0%} CPU)"
                    )
                    if index == 0:
                        continue  # warm-up
                    rates[name].append(count / wall)
                    per_cpu[name].append(count / cpu)
                    server_busy[name].append(cpu / wall)
                    load_busy[name].append(got["cpu"] / wall)
                    if name == "store":
                        closed.extend(got["latencies"])
                label = "warm-up" if index == 0 else f"round {index}/{rounds}"
                log(f"  webhooks {label}: " + ", ".join(shown))
            run_id = f"R{next(serial):03d}"
            paced = int(TARGET_RATE * seconds)
            await _seed(store, run_id, paced)
            got = await load.post(ports["store"], run_id, paced, TARGET_RATE)
            latencies = got["latencies"]
            log(
                f"  webhooks paced: store {paced / got['wall']:,.0f}/s offered {TARGET_RATE:,.0f}/s"
            )
        finally:
            await load.close()
            for runner, _ in reversed(servers):
                await runner.cleanup()
            await store.close()
        totals = {"store": count * (rounds + 1) + paced, "memory": count * (rounds + 1)}
        for name, receiver in receivers.items():
            stats = receiver.stats
            if (
                stats.statuses != totals[name]
                or stats.duplicates
                or stats.rejected
                or stats.store_errors
            ):
                raise RuntimeError(f"{name} receiver miscounted: {stats}")
        delivered, orphans = _delivered(path)
        if (delivered, orphans) != (totals["store"], 0):
            raise RuntimeError(f"the store merged {delivered} of {totals} ({orphans} orphans)")
    busy = {"server": server_busy, "load": load_busy}
    return _result(rates, per_cpu, busy, closed, latencies, count)


def _result(
    rates: dict[str, list[float]],
    per_cpu: dict[str, list[float]],
    busy: dict[str, dict[str, list[float]]],
    closed: list[float],
    latencies: list[float],
    count: int,
) -> Result:
    ratio = _ratio(rates["store"], rates["bare"])
    cpu_ratio = _ratio(per_cpu["store"], per_cpu["bare"])
    memory_ratio = _ratio(rates["memory"], rates["bare"])
    bare, store, memory = (median(rates[name]) for name in ("bare", "store", "memory"))
    p50, p99 = _percentile(latencies, 0.5) * 1e3, _percentile(latencies, 0.99) * 1e3
    closed_p50, closed_p99 = (_percentile(closed, f) * 1e3 for f in (0.5, 0.99))
    result = Result()
    result.metrics.update(
        {
            "webhook_store_posts_s": store,
            "webhook_store_ratio_vs_bare": ratio,
            "webhook_store_cpu_ratio_vs_bare": cpu_ratio,
            "webhook_store_ack_p50_ms": p50,
            "webhook_store_ack_p99_ms": p99,
            "webhook_memory_ratio_vs_bare": memory_ratio,
            "webhook_bare_posts_s": bare,
        }
    )
    result.details = {
        "posts_s": rates,
        "posts_per_server_cpu_s": per_cpu,
        "cpu_busy": busy,
        "concurrency": CONCURRENCY,
        "posts_per_run": count,
        "paced_posts": len(latencies),
        "closed_loop_store_ack_p50_ms": closed_p50,
        "closed_loop_store_ack_p99_ms": closed_p99,
    }
    server, generator = median(busy["server"]["store"]), median(busy["load"]["store"])
    rows = result.rows
    rows.append(
        Row(
            "webhooks",
            f"c={CONCURRENCY} store receiver POSTs/s",
            f"{store:,.0f}/s (CPU busy: server {server:.0%}, load {generator:.0%})",
            f">= {TARGET_RATE:,.0f}/s",
            verdict(store >= TARGET_RATE),
        )
    )
    server, generator = median(busy["server"]["bare"]), median(busy["load"]["bare"])
    shown = (
        f"bare {bare:,.0f}/s, store {store:,.0f}/s: {ratio:.3f}x (bare CPU busy: server "
        f"{server:.0%}, load {generator:.0%})"
    )
    rows.append(
        Row(
            "webhooks",
            "store receiver/bare handler",
            shown,
            f">= {TARGET_RATIO}",
            verdict(ratio >= TARGET_RATIO),
        )
    )
    bare_cpu, store_cpu = median(per_cpu["bare"]), median(per_cpu["store"])
    shown = f"bare {bare_cpu:,.0f}/s, store {store_cpu:,.0f}/s: {cpu_ratio:.3f}x"
    rows.append(Row("webhooks", "per server CPU second (info)", shown))
    rows.append(
        Row(
            "webhooks",
            f"store ack p50 / p99 at {TARGET_RATE:,.0f} POSTs/s offered",
            f"{p50:.2f} ms / {p99:.2f} ms",
            f"<= {TARGET_P50_MS:g} / {TARGET_P99_MS:g} ms",
            verdict(p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS),
        )
    )
    shown = f"memory {memory:,.0f}/s: {memory_ratio:.3f}x bare"
    rows.append(Row("webhooks", "memory-store receiver (info)", shown))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhooks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer POSTs per run")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON too")
    args = parser.parse_args(argv)
    server_cpu, load_cpu = cpus()
    pin(0, server_cpu)
    result = asyncio.run(run(args.quick, load_cpu))
    for row in result.rows:
        print(f"{row.scenario} | {row.case} | {row.result} | {row.target} | {row.verdict}")
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
