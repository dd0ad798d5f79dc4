"""Scale-out figures: one campaign through 1, 2 and 3 `taskiq worker` processes.

``python -m benchmarks.distributed [--per-channel N] [--channels C] [--rate R] [--workers 1,2,3]``
from the repository root (it uses the test harness in ``tests/distributed``). Each run gets a
fresh redis-server; the bundled fake runs in a process of its own with its limits off and notes
when it accepts each message (``--fake OUT`` is that process: it writes its records to OUT
when stopped). Reported per run: total msg/s (sent / campaign elapsed), each
channel's achieved rate ((accepted - 1) / (last - first acceptance)), duplicate sends at the
fake, and the outcome counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialog360_async import Dialog360Client
from dialog360_async.distributed import broadcast, make_broker
from tests.distributed._harness import (
    RedisServer,
    TimedFake,
    Workers,
    campaign,
    rates,
    recipient,
    worker_env,
)

from ._server import cpus, pin
from ._stats import Result, Row, Sample, interleave, log, median, paired_ratio, verdict
from .throughput import bulk_run


async def serve_fake() -> TimedFake:
    """The fake's process: serve until SIGTERM; return the fake with its records."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    fake = TimedFake(throughput=None, engage_all=True, record_requests=False)
    async with fake:
        print(fake.url, flush=True)
        await stop.wait()
    return fake


class FakeProcess:
    """``python -m benchmarks.distributed --fake OUT`` as a child process."""

    def __init__(self, out: Path) -> None:
        self.out = out
        command = [sys.executable, "-m", "benchmarks.distributed", "--fake", str(out)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("the fake server did not start")

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        with contextlib.suppress(OSError, ValueError):
            records: dict[str, Any] = json.loads(self.out.read_text())
            return records
        return {"accepted": [], "sends": {}}


async def one_run(workers: int, channels: int, per_channel: int, rate: float) -> dict[str, Any]:
    keys = {f"ch{n}": f"bench-key-{n}" for n in range(channels)}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        fake = FakeProcess(Path(tmp) / "fake.json")
        try:
            env = worker_env(server.url, fake.url, keys, rate=rate, worker_batches=8)
            with Workers(env, Path(tmp)) as pool:
                pool.start(workers)
                await asyncio.to_thread(pool.wait_ready)
                started = time.monotonic()
                summary = await broadcast(
                    campaign(list(keys), per_channel),
                    broker=make_broker(server.url),
                    batch_size=100,
                    poll=0.2,
                    stall_timeout=120,
                )
                wall = time.monotonic() - started
        finally:
            records = fake.stop()
            server.stop(kill=True)
    sends: dict[str, int] = records["sends"]
    achieved = rates([(t, wa_id) for t, wa_id in records["accepted"]])
    return {
        "workers": workers,
        "messages": summary.messages,
        "sent": summary.sent,
        "failed": summary.failed,
        "unknown": summary.unknown,
        "duplicates": sum(1 for count in sends.values() if count > 1),
        "accepted": sum(sends.values()),
        "total_msg_per_s": round(summary.sent / wall, 1),
        "per_channel_msg_per_s": {f"ch{c}": round(v, 1) for c, v in achieved.items()},
        "configured_per_channel": rate,
    }


# -- the `python -m benchmarks` scenario: one worker vs BulkSender, and the capacity model --

CONCURRENCY, BATCHES = 8, 8  # a worker's sends in flight: 8 batches x 8 = BulkSender c=64
VS_BULK = 0.6
MODEL_TOLERANCE = 0.25
PACE = 80.0  # msg/s per channel, WhatsApp's default


def group_cpu(group: int) -> float:
    """CPU seconds used so far by the live processes of a process group (Linux /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == group:  # pgrp
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def redis_cost(client: Any) -> tuple[float, int]:
    """Redis CPU seconds so far, and the round trips it served: script calls, stream and
    transaction commands (the calls a script makes are not round trips)."""
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    trips = ("evalsha", "eval", "xadd", "xreadgroup", "xautoclaim", "xack", "xdel", "exec")
    calls = sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in trips)
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls


@dataclass
class Costs:
    """What one run cost per message: worker CPU us, Redis CPU us, Redis round trips."""

    messages: int
    wall: float
    worker_us: float
    redis_us: float
    round_trips: float

    @property
    def rate(self) -> float:
        return self.messages / self.wall


class Rig:
    """One redis-server and one `taskiq worker` process against the benchmark's fake.

    While a campaign runs, the worker has this process's CPU to itself, as the in-process
    BulkSender it is compared with does: redis-server (a service of its own: a shard of the
    capacity model) and this process (the producer, ``broadcast()``: another program in a
    deployment) run on the fake's CPU meanwhile.
    """

    def __init__(self, tmp: Path, url: str, channels: int, rate: float) -> None:
        self.cpus = cpus()
        self.server = RedisServer(tmp)
        self.server.start()
        assert self.server.process is not None
        pin(self.server.process.pid, self.cpus[1])
        self.keys = {f"ch{n}": f"bench-key-{n}" for n in range(channels)}
        env = worker_env(
            self.server.url,
            url,
            self.keys,
            rate=rate,
            concurrency=CONCURRENCY,
            worker_batches=BATCHES,
        )
        self.workers = Workers(env, tmp)
        self.workers.start(1)
        self.workers.wait_ready()
        self.redis = self.server.client()

    async def run(self, per_channel: int) -> Costs:
        group = self.workers.processes[0].pid
        cpu0, (redis0, trips0) = group_cpu(group), redis_cost(self.redis)
        pin(0, self.cpus[1])
        try:
            started = time.perf_counter()
            summary = await broadcast(
                campaign(list(self.keys), per_channel),
                broker=make_broker(self.server.url),
                batch_size=100,
                poll=0.05,
                stall_timeout=120,
            )
            wall = time.perf_counter() - started
        finally:
            pin(0, self.cpus[0])
        cpu1, (redis1, trips1) = group_cpu(group), redis_cost(self.redis)
        if summary.sent != summary.messages:
            raise RuntimeError(f"distributed run failed: {summary}")
        n = summary.sent
        return Costs(n, wall, (cpu1 - cpu0) / n * 1e6, (redis1 - redis0) / n * 1e6,
                     (trips1 - trips0) / n)  # fmt: skip

    def close(self) -> None:
        self.redis.close()
        self.workers.stop()
        self.server.stop(kill=True)


async def _ratio(result: Result, url: str, quick: bool) -> None:
    count, pairs = (4_000, 3) if quick else (12_000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), url, 1, 1e6)  # limits off: a rate no run reaches
        try:
            to = [recipient(0, n) for n in range(count)]
            async with Dialog360Client("bench-key-0", base_url=url, rate_limit=None) as client:
                runs = {
                    "bulk": bulk_run(client, to, count, CONCURRENCY * BATCHES),
                    "worker": lambda: _as_sample(rig.run(count)),
                }
                log(f"distributed: 1 worker vs BulkSender c=64, {count} messages, {pairs} pairs")
                samples = await interleave(runs, pairs, "distributed")
        finally:
            rig.close()
    bulk, worker = samples["bulk"], samples["worker"]
    ratio = paired_ratio([s.rate for s in worker], [s.rate for s in bulk])
    result.metrics["distributed_worker_vs_bulk"] = ratio
    result.details["worker_vs_bulk"] = {
        "bulk_msg_s": median([s.rate for s in bulk]),
        "worker_msg_s": median([s.rate for s in worker]),
        "worker_cpu_us": median([s.cpu_us for s in worker]),
        "ratio": ratio,
    }
    shown = (
        f"worker {median([s.rate for s in worker]):,.0f} msg/s, BulkSender "
        f"{median([s.rate for s in bulk]):,.0f} msg/s: {ratio:.3f}x"
    )
    result.rows.append(
        Row("8 distributed", "1 worker/BulkSender c=64", shown, f">= {VS_BULK}",
            verdict(ratio >= VS_BULK))
    )  # fmt: skip


async def _as_sample(costs: Awaitable[Costs]) -> Sample:
    got = await costs
    # The worker's CPU (another process) stands in for the client's: it is what it costs.
    return Sample(got.messages, got.worker_us * got.messages / 1e6, got.wall)


def model(costs: Costs, total: float = 80_000.0, headroom: float = 0.7) -> dict[str, float]:
    """Workers (one core each) and Redis shards (one core each) for ``total`` msg/s, each
    busy at most ``headroom`` of its core, from the per-message costs of a paced run."""
    return {
        "msg_s": total,
        "worker_cores": total * costs.worker_us / 1e6,
        "workers": math.ceil(total * costs.worker_us / 1e6 / headroom),
        "redis_cores": total * costs.redis_us / 1e6,
        "shards": math.ceil(total * costs.redis_us / 1e6 / headroom),
        "round_trips_s": total * costs.round_trips,
    }


async def _model(result: Result, url: str, quick: bool) -> None:
    """Per-message costs of a paced run (channels at 80 msg/s), then a run twice as wide:
    the model says its costs per message are the same; check that within +-25 %."""
    seconds = 4 if quick else 10
    narrow, wide = (10, 20) if quick else (20, 40)
    per_channel = int(PACE * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), url, wide, PACE)
        try:
            rig.keys = dict(list(rig.keys.items())[:narrow])
            await rig.run(20)  # warm-up
            base = await rig.run(per_channel)
            rig.keys = {f"ch{n}": f"bench-key-{n}" for n in range(wide)}
            check = await rig.run(per_channel)
        finally:
            rig.close()
    plan = model(base)
    errors = {
        "worker": check.worker_us / base.worker_us - 1,
        "redis": check.redis_us / base.redis_us - 1,
    }
    result.details["capacity_model"] = {
        "calibration": {**base.__dict__, "channels": narrow},
        "check": {**check.__dict__, "channels": wide},
        "errors": errors,
        "plan_80k": plan,
    }
    result.metrics["distributed_model_error_pct"] = 100 * max(abs(e) for e in errors.values())
    ok = all(abs(e) <= MODEL_TOLERANCE for e in errors.values())
    shown = (
        f"{narrow} ch: worker {base.worker_us:.0f} us, Redis {base.redis_us:.0f} us, "
        f"{base.round_trips:.2f} trips/msg; {wide} ch measured: worker {check.worker_us:.0f} "
        f"us ({errors['worker']:+.0%}), Redis {check.redis_us:.0f} us ({errors['redis']:+.0%})"
    )
    result.rows.append(
        Row("8 distributed", f"model per msg @{PACE:g}/s", shown, "+-25 %", verdict(ok))
    )
    result.rows.append(
        Row("8 distributed", "model: 1,000 ch x 80/s", f"{plan['workers']} worker cores, "
            f"{plan['shards']} Redis shards ({plan['round_trips_s']:,.0f} round trips/s)")
    )  # fmt: skip


async def run(url: str, quick: bool) -> Result:
    """The scenario of ``python -m benchmarks``: the ratio row and the model rows."""
    result = Result()
    await _ratio(result, url, quick)
    await _model(result, url, quick)
    return result


def main() -> None:
    """Run the scenarios and print one JSON line per run, then a table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--per-channel", type=int, default=1500)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--rate", type=float, default=1000.0, help="configured msg/s/channel")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--fake", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake:
        fake = asyncio.run(serve_fake())
        records = {"accepted": fake.accepted, "sends": fake.sends}
        Path(args.fake).write_text(json.dumps(records))
        return
    results = []
    for count in (int(n) for n in args.workers.split(",")):
        result = asyncio.run(one_run(count, args.channels, args.per_channel, args.rate))
        print(json.dumps(result), flush=True)
        results.append(result)
    print(f"\n{'workers':>7} {'msg/s':>8} {'dups':>5} {'sent':>7}  per-channel msg/s")
    for r in results:
        per = ", ".join(f"{v:g}" for v in r["per_channel_msg_per_s"].values())
        line = f"{r['workers']:>7} {r['total_msg_per_s']:>8} {r['duplicates']:>5} {r['sent']:>7}"
        print(f"{line}  {per}")


if __name__ == "__main__":
    main()
