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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dialog360_async.distributed import broadcast, make_broker
from tests.distributed._harness import (
    RedisServer,
    TimedFake,
    Workers,
    campaign,
    rates,
    worker_env,
)


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
