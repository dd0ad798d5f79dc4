"""``python -m benchmarks [--quick] [--json results.json]``: run every scenario, print a table.

The fake server runs in its own process, on its own CPU where possible, with its limits off.
Targets are printed as PASS/FAIL; CI does not run this.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from . import distributed, journal, memory, overhead, rate, statuses, throughput, webhooks
from ._common import pywa_version
from ._server import FakeServer, cpus, pin, uvloop_version
from ._stats import Result, Row, log

NETWORK: dict[str, Callable[[str, bool], Awaitable[Result]]] = {
    "overhead": overhead.run,
    "throughput": throughput.run,
    "rate": rate.run,
    "journal": journal.run,
    "distributed": distributed.run,
}
SCENARIOS = (
    "overhead",
    "throughput",
    "memory",
    "rate",
    "journal",
    "webhooks",
    "statuses",
    "distributed",
)
REQUIRED = (
    "overhead_ratio_sdk_vs_raw",
    "throughput_ratio_sdk_vs_raw",
    "throughput_ratio_sdk_vs_pywa",
    "bulk_1m_peak_rss_mb",
    "rate_error_pct_80",
    "journal_throughput_ratio",
    "webhook_store_posts_s",
    "webhook_store_ratio_vs_bare",
    "webhook_store_ack_p99_ms",
    "statuses_rss_growth_mb",
    "distributed_worker_vs_bulk",
    "distributed_model_error_pct",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 3 minutes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})",
    )
    return parser


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine(client_cpu: int | None, server_cpu: int | None, pinned: bool) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "orjson": _version("orjson"),
        "dialog360_async": _version("dialog360_async"),
        "server_loop": f"uvloop {uvloop_version()}" if uvloop_version() else "asyncio",
        "client_loop": "asyncio",
        "pywa": pywa_version(),
        "httpx": _version("httpx"),
        "client_cpu": client_cpu,
        "server_cpu": server_cpu if pinned else None,
    }


def table(rows: Sequence[Row]) -> str:
    header = Row("scenario", "case", "result", "target", "verdict")
    cells = [[r.scenario, r.case, r.result, r.target, r.verdict] for r in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    client_cpu, server_cpu = cpus()
    pin(0, client_cpu)  # the memory child inherits it
    results: dict[str, Result] = {}
    with FakeServer(cpu=server_cpu, throughput=0) as server:
        info = machine(client_cpu, server_cpu, server.pinned)
        log(f"fake server at {server.url}; {json.dumps(info)}")
        for name in SCENARIOS:
            if name not in chosen:
                continue
            if name == "memory":
                results[name] = memory.run(args.quick)
            elif name == "statuses":
                results[name] = statuses.run(args.quick)
            elif name == "webhooks":  # the receivers stay on this CPU, the load goes to the other
                results[name] = asyncio.run(webhooks.run(args.quick, server_cpu))
            else:
                results[name] = asyncio.run(NETWORK[name](server.url, args.quick))
    elapsed = time.perf_counter() - started
    rows = [row for result in results.values() for row in result.rows]
    mode = "quick" if args.quick else "full"
    print(f"dialog360_async benchmarks ({mode} mode, {elapsed:.0f} s)")
    print(
        f"{info['cpu_model']}, {info['nproc']} CPUs; client on CPU {client_cpu}, "
        f"fake server on CPU {info['server_cpu']} ({info['server_loop']}); Python "
        f"{info['python']}, aiohttp {info['aiohttp']}, orjson {info['orjson']}, "
        f"pywa {info['pywa'] or 'not installed'}"
    )
    print(table(rows))
    if args.json is not None:
        metrics = {k: v for result in results.values() for k, v in result.metrics.items()}
        document: dict[str, Any] = {key: metrics.get(key) for key in REQUIRED}
        document.update({k: v for k, v in metrics.items() if k not in document})
        document["mode"] = mode
        document["seconds"] = elapsed
        document["machine"] = info
        document["checks"] = [row.__dict__ for row in rows if row.verdict]
        document["scenarios"] = {name: result.details for name, result in results.items()}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
