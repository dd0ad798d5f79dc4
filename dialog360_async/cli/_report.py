"""``dialog360 report DB`` and ``dialog360 unknown DB``: what a broadcast's messages became.

Both read a broadcast store and never write to it: the store must exist (opening a missing
path would create an empty one), and the send lock is not taken, so they run during a
broadcast and beside a webhook receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from typing import IO

from .._report import DeliveryReport
from .._store import BroadcastStore
from ._broadcast import _same_file
from ._html import failure_label, funnel, generated, render_html
from ._input import UsageError

__all__ = ["check_store", "delivery_report", "render_table", "unknown"]

_SHOWN_CAMPAIGNS = 10
_NUMBER = re.compile(r"\+?[\d ()-]{5,}")  # a phone number, not a file name


def _shown(text: str) -> str:
    # Values from data reach a terminal: no escape sequence or newline of theirs gets through.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_store(path: str) -> None:
    """Refuse a DB path that holds no file: opening it would create an empty store."""
    if not os.path.exists(path):
        # `report USER` was the On-Premise user report before 'report' meant deliveries.
        hint = " (to report a user: dialog360 report-user USER)" if _NUMBER.fullmatch(path) else ""
        raise UsageError(f"no broadcast store at {path}: check the path{hint}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a broadcast store")


def _campaign(store: BroadcastStore, path: str, wanted: str | None) -> str:
    names = store.campaigns()
    if not names:
        raise UsageError(f"{path} holds no broadcast yet")
    if wanted is None:  # the campaign of the last run, as the store's own default
        return store.last_campaign() or names[-1]
    if wanted not in names:
        listed = ", ".join(repr(name) for name in names[-_SHOWN_CAMPAIGNS:])
        more = f" (the last {_SHOWN_CAMPAIGNS})" if len(names) > _SHOWN_CAMPAIGNS else ""
        raise UsageError(f"no campaign {wanted!r} in {path}; it has{more}: {listed}")
    return wanted


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as out:
        yield out


def unknown(args: argparse.Namespace) -> int:
    """``unknown``: the messages in doubt of one campaign, as JSONL."""
    if args.output not in (None, "-") and _same_file(args.output, args.db):
        raise UsageError("--output and DB are the same file: name a different file")
    check_store(args.db)
    return asyncio.run(_unknown(args))


async def _unknown(args: argparse.Namespace) -> int:
    async with BroadcastStore(args.db) as store:
        campaign = _campaign(store, args.db, args.campaign)
        count = 0
        with _output(args.output) as out:
            for record in store.in_doubt(campaign):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    print(
        f"{count} message(s) in doubt in campaign {_shown(campaign)}", file=sys.stderr, flush=True
    )
    return 0


def render_table(report: DeliveryReport) -> str:
    """The report as a plain-text table for a terminal."""
    head = f"delivery report: campaign {_shown(report.campaign)}"
    when = generated(report)
    lines = [head + (f" (generated {when})" if when else ""), ""]
    rows = funnel(report)
    width = max(len(row.label) + 2 * row.depth for row in rows)
    digits = max(len(str(row.value)) for row in rows)
    for row in rows:
        label = ("  " * row.depth + row.label).ljust(width)
        share = row.share.ljust(12)
        lines.append(f"  {label}  {row.value:>{digits}}  {share}  {row.note}".rstrip())
    lines += ["", "failures by code:"]
    if not report.failures:
        lines.append("  none")
    failures = report.failures
    if failures:
        counts = max(len(str(f.count)) for f in failures)
        labels = max(len(failure_label(f)) for f in failures)
        statuses = max(len(f.status) for f in failures)
        for f in failures:
            reason = f" ({f.reason})" if f.code is not None and f.reason != f.status else ""
            lines.append(
                f"  {f.count:>{counts}}  {f.status.ljust(statuses)}  "
                f"{_shown(failure_label(f)).ljust(labels)}  {_shown(f.meaning)}{reason}".rstrip()
            )
    return "\n".join(lines) + "\n"


def delivery_report(args: argparse.Namespace) -> int:
    """``report``: the delivery report as a table, and with --html as a page."""
    if not 0 <= args.horizon < math.inf:
        raise UsageError("--horizon must be a number of seconds >= 0")
    if args.html is not None and _same_file(args.html, args.db):
        raise UsageError("--html and DB are the same file: name a different file")
    check_store(args.db)
    report = asyncio.run(_report(args))
    sys.stdout.write(render_table(report))
    if args.html is not None:
        with open(args.html, "w", encoding="utf-8") as page:
            page.write(render_html(report))
        print(f"wrote {args.html}", file=sys.stderr, flush=True)
    return 0


async def _report(args: argparse.Namespace) -> DeliveryReport:
    async with BroadcastStore(args.db) as store:
        campaign = _campaign(store, args.db, args.campaign)
        return await store.report(campaign, horizon=args.horizon)
