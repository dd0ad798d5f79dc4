"""Measuring one run, interleaving the runs of a comparison, medians of paired ratios."""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RUN_TIMEOUT = 600.0  # seconds: no single run may hang the benchmark


def log(message: str) -> None:
    """Progress goes to stderr; the table goes to stdout."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    """One run: ``count`` messages, client CPU seconds and wall seconds."""

    count: int
    cpu: float
    wall: float

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per message."""
        return self.cpu / self.count * 1e6

    @property
    def wall_us(self) -> float:
        """Wall microseconds per message."""
        return self.wall / self.count * 1e6

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.count / self.wall


async def measure(run: Callable[[], Awaitable[int]]) -> Sample:
    """Time one run (which returns how many messages it sent) in CPU and wall seconds."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    count = await asyncio.wait_for(run(), RUN_TIMEOUT)
    return Sample(count, time.process_time() - cpu, time.perf_counter() - wall)


async def interleave(
    runs: Mapping[str, Callable[[], Awaitable[Sample]]], rounds: int, label: str
) -> dict[str, list[Sample]]:
    """Run A, B(, C), then A, B(, C) again... ``rounds`` times, after one warm-up round."""
    for run in runs.values():
        await run()  # warm-up: connections, caches, generated converters
    samples: dict[str, list[Sample]] = {name: [] for name in runs}
    for index in range(rounds):
        for name, run in runs.items():
            samples[name].append(await run())
        shown = ", ".join(
            f"{n} {s[-1].rate:,.0f}/s {s[-1].cpu_us:,.0f}us" for n, s in samples.items()
        )
        log(f"  {label} round {index + 1}/{rounds}: {shown}")
    return samples


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median over rounds of each round's ``numerator / denominator``."""
    return median([n / d for n, d in zip(numerators, denominators, strict=True)])


@dataclass
class Row:
    """One line of the printed table."""

    scenario: str
    case: str
    result: str
    target: str = ""
    verdict: str = ""


@dataclass
class Result:
    """What one scenario hands back: table rows, headline numbers and everything measured."""

    rows: list[Row] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool | None) -> str:
    """PASS / FAIL, or "skipped" when there was nothing to judge."""
    return "skipped" if ok is None else ("PASS" if ok else "FAIL")
