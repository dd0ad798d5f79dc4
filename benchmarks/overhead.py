"""Scenario 1: client CPU (and wall) time per send, SDK vs hand-written aiohttp vs pywa."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from dialog360_async import Dialog360Client

from ._common import (
    KEY,
    SEED_CONTACT,
    WHERE,
    Pywa,
    Raw,
    check_same_bodies,
    pool,
    pywa_client,
    raw_contacts_body,
    raw_location_body,
    recipients,
)
from ._stats import Result, Row, Sample, interleave, log, measure, median, paired_ratio, verdict

TARGET = 1.15
CONCURRENCY = (1, 50)
Run = Callable[[], Awaitable[Sample]]


def _runs(
    kind: str, raw: Raw, sdk: Dialog360Client, wa: Pywa | None, count: int, concurrency: int
) -> dict[str, Run]:
    to = recipients(count)
    if kind == "location":
        raw_body = raw_location_body

        async def sdk_send(n: int) -> object:
            return await sdk.send_location(to[n], WHERE)
    else:
        raw_body = raw_contacts_body

        async def sdk_send(n: int) -> object:
            return await sdk.send_contacts(to[n], SEED_CONTACT)

    async def raw_send(n: int) -> object:
        return await raw.send(raw_body(to[n]))

    def run(send: Callable[[int], Awaitable[object]], messages: int) -> Run:
        return lambda: measure(lambda: pool(send, messages, concurrency))

    runs = {"raw": run(raw_send, count), "sdk": run(sdk_send, count)}
    if wa is not None:
        pywa_send = wa.send_location if kind == "location" else wa.send_contacts
        # pywa costs several times more per send: fewer messages keep its runs as long.
        runs["pywa"] = run(lambda n: pywa_send(to[n]), max(concurrency, count // 4))
    return runs


async def run(url: str, quick: bool) -> Result:
    count, rounds = (600, 5) if quick else (3000, 7)
    result = Result()
    async with (
        aiohttp.ClientSession() as session,
        Dialog360Client(KEY, base_url=url, rate_limit=None) as sdk,
        pywa_client(url) as wa,
    ):
        check_same_bodies(sdk)
        raw = Raw(session, url)
        for kind in ("location", "contacts"):
            for concurrency in CONCURRENCY:
                label = f"{kind} c={concurrency}"
                log(f"overhead: {label}, {count} messages per run, {rounds} rounds")
                runs = _runs(kind, raw, sdk, wa, count, concurrency)
                samples = await interleave(runs, rounds, f"overhead {label}")
                _report(result, label, samples)
    result.metrics["overhead_ratio_sdk_vs_raw"] = result.details["location c=50"]["sdk_vs_raw"]
    return result


def _report(result: Result, label: str, samples: dict[str, list[Sample]]) -> None:
    names = {"raw": "raw aiohttp", "sdk": "SDK", "pywa": "pywa"}
    detail: dict[str, object] = {}
    for name, runs in samples.items():
        cpu, wall = median([s.cpu_us for s in runs]), median([s.wall_us for s in runs])
        detail[name] = {"cpu_us": cpu, "wall_us": wall, "messages": runs[0].count}
        shown = f"{cpu:,.0f} us CPU/msg, {wall:,.0f} us wall/msg"
        result.rows.append(Row("1 overhead", f"{label} {names[name]}", shown))
    raw, sdk = samples["raw"], samples["sdk"]
    ratio = paired_ratio([s.cpu_us for s in sdk], [s.cpu_us for s in raw])
    wall = paired_ratio([s.wall_us for s in sdk], [s.wall_us for s in raw])
    detail["sdk_vs_raw"], detail["sdk_vs_raw_wall"] = ratio, wall
    result.rows.append(
        Row(
            "1 overhead",
            f"{label} SDK/raw CPU",
            f"{ratio:.3f}x (wall {wall:.3f}x)",
            f"<= {TARGET} (aim < 1.0)",
            verdict(ratio <= TARGET),
        )
    )
    if "pywa" in samples:
        pywa = samples["pywa"]
        ratio = paired_ratio([s.cpu_us for s in pywa], [s.cpu_us for s in sdk])
        wall = paired_ratio([s.wall_us for s in pywa], [s.wall_us for s in sdk])
        detail["pywa_vs_sdk"], detail["pywa_vs_sdk_wall"] = ratio, wall
        result.rows.append(
            Row("1 overhead", f"{label} pywa/SDK CPU", f"{ratio:.2f}x (wall {wall:.2f}x)")
        )
    else:
        result.rows.append(
            Row("1 overhead", f"{label} pywa", "skipped: pywa not installed", "", "skipped")
        )
    result.details[label] = detail
