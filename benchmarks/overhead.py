"""Scenario 1: client CPU (and wall) time per send, SDK vs hand-written aiohttp vs pywa.

Each message kind runs twice: with its model (or dict) built once and reused, and built per
message, as a web handler or a broadcast of personalised cards does: the second case is the
caller's real cost, construction and validation included.
"""

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
    raw_contacts_body_built,
    raw_location_body,
    recipients,
    seed_contact,
    where,
)
from ._stats import Result, Row, Sample, interleave, log, measure, median, paired_ratio, verdict

TARGET = 1.15
# Built per message (issue 14): the caller's real per-send cost.
TARGETS = {"location": TARGET, "contacts": TARGET, "location built": 1.0, "contacts built": 1.05}
CASES = tuple(TARGETS)
CONCURRENCY = (1, 50)
Run = Callable[[], Awaitable[Sample]]


def _runs(
    case: str, raw: Raw, sdk: Dialog360Client, wa: Pywa | None, count: int, concurrency: int
) -> dict[str, Run]:
    to = recipients(count)
    kind = case.split()[0]
    if case == "location":
        raw_body = raw_location_body

        async def sdk_send(n: int) -> object:
            return await sdk.send_location(to[n], WHERE)
    elif case == "location built":
        raw_body = raw_location_body  # a dict literal: built per message already

        async def sdk_send(n: int) -> object:
            return await sdk.send_location(to[n], where())
    elif case == "contacts":
        raw_body = raw_contacts_body

        async def sdk_send(n: int) -> object:
            return await sdk.send_contacts(to[n], SEED_CONTACT)
    else:
        raw_body = raw_contacts_body_built

        async def sdk_send(n: int) -> object:
            return await sdk.send_contacts(to[n], seed_contact())

    async def raw_send(n: int) -> object:
        return await raw.send(raw_body(to[n]))

    def run(send: Callable[[int], Awaitable[object]], messages: int) -> Run:
        return lambda: measure(lambda: pool(send, messages, concurrency))

    runs = {"raw": run(raw_send, count), "sdk": run(sdk_send, count)}
    if wa is not None and case == kind:  # pywa is compared once per kind, on the reused rows
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
        for case in CASES:
            for concurrency in CONCURRENCY:
                label = f"{case} c={concurrency}"
                log(f"overhead: {label}, {count} messages per run, {rounds} rounds")
                runs = _runs(case, raw, sdk, wa, count, concurrency)
                samples = await interleave(runs, rounds, f"overhead {label}")
                _report(result, label, samples, TARGETS[case], pywa=wa is not None)
    details = result.details
    result.metrics["overhead_ratio_sdk_vs_raw"] = details["location c=50"]["sdk_vs_raw"]
    result.metrics["overhead_built_location_ratio"] = details["location built c=50"]["sdk_vs_raw"]
    result.metrics["overhead_built_contacts_ratio"] = details["contacts built c=50"]["sdk_vs_raw"]
    return result


def _report(
    result: Result, label: str, samples: dict[str, list[Sample]], target: float, *, pywa: bool
) -> None:
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
            f"<= {target} (aim < 1.0)" if target > 1.0 else f"<= {target}",
            verdict(ratio <= target),
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
    elif not pywa:
        result.rows.append(
            Row("1 overhead", f"{label} pywa", "skipped: pywa not installed", "", "skipped")
        )
    result.details[label] = detail
