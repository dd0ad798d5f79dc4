"""Scenario 2: bulk throughput, BulkSender vs a hand-written aiohttp pool vs pywa."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from dialog360_async import BulkSender, Dialog360Client

from ._common import (
    KEY,
    Pywa,
    Raw,
    location_messages,
    pool,
    pywa_client,
    raw_location_body,
    recipients,
    semaphore,
)
from ._stats import Result, Row, Sample, interleave, log, measure, median, paired_ratio, verdict

LEVELS = (1, 16, 64, 256)
HEADLINE = 64
PYWA_CONCURRENCY = 50
VS_RAW, VS_PYWA = 0.95, 5.0  # the first vs raw at every level (issue 14)


def bulk_run(
    client: Dialog360Client, to: list[str], count: int, concurrency: int
) -> Callable[[], Awaitable[Sample]]:
    """One BulkSender run (no rate limit, no journal) over ``count`` location messages."""

    async def send_all() -> int:
        sender = BulkSender(client, concurrency=concurrency, rate_limit=None)
        summary = await sender.send_all(location_messages(to, count))
        if summary.sent != count:
            raise RuntimeError(f"bulk run failed:\n{summary}")
        return count

    return lambda: measure(send_all)


async def run(url: str, quick: bool) -> Result:
    count, pairs = (5_000, 5) if quick else (20_000, 9)
    to = recipients(count)
    result = Result()
    async with (
        aiohttp.ClientSession() as session,
        Dialog360Client(KEY, base_url=url, rate_limit=None) as client,
        pywa_client(url) as wa,
    ):
        raw = Raw(session, url)

        async def raw_send(n: int) -> object:
            return await raw.send(raw_location_body(to[n]))

        for concurrency in LEVELS:
            log(f"throughput: c={concurrency}, {count} messages per run, {pairs} pairs")
            runs = {
                "raw": lambda c=concurrency: measure(lambda: pool(raw_send, count, c)),
                "sdk": bulk_run(client, to, count, concurrency),
            }
            samples = await interleave(runs, pairs, f"throughput c={concurrency}")
            _report_raw(result, concurrency, samples)
        await _vs_pywa(result, client, wa, to, count, pairs)
    result.metrics["throughput_ratio_sdk_vs_raw"] = result.details[f"c={HEADLINE}"]["sdk_vs_raw"]
    return result


def _report_raw(result: Result, concurrency: int, samples: dict[str, list[Sample]]) -> None:
    raw, sdk = samples["raw"], samples["sdk"]
    ratio = paired_ratio([s.rate for s in sdk], [s.rate for s in raw])
    raw_rate, sdk_rate = median([s.rate for s in raw]), median([s.rate for s in sdk])
    result.details[f"c={concurrency}"] = {
        "raw_msg_s": raw_rate,
        "sdk_msg_s": sdk_rate,
        "raw_cpu_us": median([s.cpu_us for s in raw]),
        "sdk_cpu_us": median([s.cpu_us for s in sdk]),
        "sdk_vs_raw": ratio,
    }
    shown = f"raw {raw_rate:,.0f} msg/s, BulkSender {sdk_rate:,.0f} msg/s: {ratio:.3f}x"
    case = f"c={concurrency} SDK/raw"
    result.rows.append(Row("2 throughput", case, shown, f">= {VS_RAW}", verdict(ratio >= VS_RAW)))


async def _vs_pywa(
    result: Result, client: Dialog360Client, wa: Pywa | None, to: list[str], count: int, pairs: int
) -> None:
    case = f"c={PYWA_CONCURRENCY} SDK/pywa"
    if wa is None:
        result.rows.append(Row("2 throughput", case, "skipped: pywa not installed", "", "skipped"))
        result.metrics["throughput_ratio_sdk_vs_pywa"] = None
        return
    # pywa is several times slower: a quarter of the messages keeps its runs as long.
    few = count // 4

    async def pywa_send(n: int) -> object:
        return await wa.send_location(to[n])

    log(f"throughput: SDK vs pywa at c={PYWA_CONCURRENCY}, {count} / {few} messages, {pairs} pairs")
    runs = {
        "sdk": bulk_run(client, to, count, PYWA_CONCURRENCY),
        "pywa": lambda: measure(lambda: semaphore(pywa_send, few, PYWA_CONCURRENCY)),
    }
    samples = await interleave(runs, pairs, f"throughput pywa c={PYWA_CONCURRENCY}")
    sdk, pywa = samples["sdk"], samples["pywa"]
    ratio = paired_ratio([s.rate for s in sdk], [s.rate for s in pywa])
    sdk_rate, pywa_rate = median([s.rate for s in sdk]), median([s.rate for s in pywa])
    result.details[case] = {
        "sdk_msg_s": sdk_rate,
        "pywa_msg_s": pywa_rate,
        "pywa_messages": few,
        "sdk_vs_pywa": ratio,
    }
    result.metrics["throughput_ratio_sdk_vs_pywa"] = ratio
    shown = f"BulkSender {sdk_rate:,.0f} msg/s, pywa {pywa_rate:,.0f} msg/s: {ratio:.2f}x"
    result.rows.append(Row("2 throughput", case, shown, f">= {VS_PYWA}", verdict(ratio >= VS_PYWA)))
