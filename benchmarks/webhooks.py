"""Scenario: webhook POSTs a second through ``WebhookReceiver`` vs a bare aiohttp handler.

``python -m benchmarks.webhooks [--quick]``. One process, one event loop: both servers and the
client on 127.0.0.1. The client is a small raw HTTP/1.1 keep-alive client (pre-built requests,
one status per POST, each with a new wamid) so that its own cost stays small next to the
servers'. The bare handler only answers 200. The receiver checks an auth header, parses,
dedups in memory and runs an async no-op ``on_status``; a receiver run ends when its last
callback has run, not at its last answer. Runs alternate bare/receiver after a warm-up pair;
the ratio is the median of the pairs' ratios, of wall-clock rates and (steadier on a shared
machine) of rates per CPU second of the process, which holds client and servers. Ack latency
is the client-observed time from writing a request to reading its answer, over every receiver
run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Sequence

from aiohttp import web

from dialog360_async.webhooks import StatusUpdate, WebhookReceiver

from ._stats import Result, Row, log, median, verdict

TARGET_RATIO = 0.6
TARGET_P50_MS = 5.0
TARGET_P99_MS = 50.0
CONCURRENCY = 8  # connections, as a sender's pool of webhook workers would open
TOKEN = "bench-webhook-token"
PATH = "/webhook"

_BODY = (
    '{"object":"whatsapp_business_account","entry":[{"id":"104857600000001","changes":[{'
    '"field":"messages","value":{"messaging_product":"whatsapp","metadata":{'
    '"display_phone_number":"4915100000000","phone_number_id":"110000000000001"},'
    '"statuses":[{"id":"wamid.%s","status":"delivered","timestamp":"1767225600",'
    '"recipient_id":"4917600000001","biz_opaque_callback_data":"b:bench|r:%s",'
    '"pricing":{"billable":true,"pricing_model":"PMP","type":"regular",'
    '"category":"marketing"}}]}}]}]}'
)


def _requests(run: int, count: int, port: int) -> list[bytes]:
    out = []
    for n in range(count):
        body = (_BODY % (f"R{run}N{n:08d}", n)).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def _post_all(port: int, requests: list[bytes], latencies: list[float]) -> None:
    """Send every request over CONCURRENCY keep-alive connections; every answer must be 200."""
    queue = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"answer {head[:40]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))


async def _bare(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _in_turn(*steps: Awaitable[object]) -> None:
    for step in steps:
        await step


async def _measure(work: Awaitable[None], count: int) -> tuple[float, float]:
    """POSTs per wall second and per CPU second of this process (client and server)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.wait_for(work, 600)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(quick: bool) -> Result:
    count, pairs = (3_000, 5) if quick else (10_000, 7)
    dispatched = 0
    drained = asyncio.Event()

    async def on_status(status: StatusUpdate) -> None:
        nonlocal dispatched
        dispatched += 1
        if dispatched == target:
            drained.set()

    target = 0
    receiver = WebhookReceiver(on_status=on_status, auth_headers={"Authorization": TOKEN})
    bare_app = web.Application()
    bare_app.router.add_post(PATH, _bare)
    bare_runner, bare_port = await _serve(bare_app)
    receiver_runner, receiver_port = await _serve(receiver.app(PATH))
    latencies: list[float] = []
    bare_rates: list[float] = []
    receiver_rates: list[float] = []
    bare_cpu: list[float] = []
    receiver_cpu: list[float] = []
    try:
        log(f"webhooks: c={CONCURRENCY}, {count} POSTs per run, {pairs} pairs + 1 warm-up")
        for index in range(pairs + 1):
            bare_requests = _requests(index, count, bare_port)
            receiver_requests = _requests(index, count, receiver_port)
            target = dispatched + count
            drained.clear()
            run_latencies: list[float] = []
            bare_rate, bare_per_cpu = await _measure(_post_all(bare_port, bare_requests, []), count)
            receiver_rate, receiver_per_cpu = await _measure(
                # The callbacks are part of the work: the run ends when the last one has run.
                _in_turn(
                    _post_all(receiver_port, receiver_requests, run_latencies), drained.wait()
                ),
                count,
            )
            if index == 0:
                continue  # warm-up
            bare_rates.append(bare_rate)
            receiver_rates.append(receiver_rate)
            bare_cpu.append(bare_per_cpu)
            receiver_cpu.append(receiver_per_cpu)
            latencies.extend(run_latencies)
            log(
                f"  webhooks pair {index}/{pairs}: bare {bare_rate:,.0f}/s, "
                f"receiver {receiver_rate:,.0f}/s, ratio {receiver_rate / bare_rate:.3f} "
                f"(per CPU second {receiver_per_cpu / bare_per_cpu:.3f})"
            )
    finally:
        await receiver_runner.cleanup()
        await bare_runner.cleanup()
    stats = receiver.stats
    if stats.dispatched != count * (pairs + 1) or stats.duplicates or stats.rejected:
        raise RuntimeError(f"receiver miscounted: {stats}")
    ratio = median([r / b for r, b in zip(receiver_rates, bare_rates, strict=True)])
    cpu_ratio = median([r / b for r, b in zip(receiver_cpu, bare_cpu, strict=True)])
    bare_rate, receiver_rate = median(bare_rates), median(receiver_rates)
    p50, p99 = _percentile(latencies, 0.5) * 1e3, _percentile(latencies, 0.99) * 1e3
    result = Result()
    result.metrics.update(
        {
            "webhook_ratio_receiver_vs_bare": ratio,
            "webhook_cpu_ratio_receiver_vs_bare": cpu_ratio,
            "webhook_receiver_posts_s": receiver_rate,
            "webhook_ack_p50_ms": p50,
            "webhook_ack_p99_ms": p99,
        }
    )
    result.details = {
        "bare_posts_s": bare_rates,
        "receiver_posts_s": receiver_rates,
        "bare_posts_per_cpu_s": bare_cpu,
        "receiver_posts_per_cpu_s": receiver_cpu,
        "concurrency": CONCURRENCY,
        "posts_per_run": count,
    }
    shown = f"bare {bare_rate:,.0f}/s, receiver {receiver_rate:,.0f}/s: {ratio:.3f}x"
    case = f"c={CONCURRENCY} receiver/bare handler"
    result.rows.append(
        Row("webhooks", case, shown, f">= {TARGET_RATIO}", verdict(ratio >= TARGET_RATIO))
    )
    shown = (
        f"bare {median(bare_cpu):,.0f}/s, receiver {median(receiver_cpu):,.0f}/s: {cpu_ratio:.3f}x"
    )
    case = "per CPU second (client + server)"
    result.rows.append(
        Row("webhooks", case, shown, f">= {TARGET_RATIO}", verdict(cpu_ratio >= TARGET_RATIO))
    )
    result.rows.append(
        Row(
            "webhooks",
            "ack latency p50 / p99",
            f"{p50:.2f} ms / {p99:.2f} ms",
            f"<= {TARGET_P50_MS:g} / {TARGET_P99_MS:g} ms",
            verdict(p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS),
        )
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhooks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer POSTs per run")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON too")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.quick))
    for row in result.rows:
        print(f"{row.scenario} | {row.case} | {row.result} | {row.target} | {row.verdict}")
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
