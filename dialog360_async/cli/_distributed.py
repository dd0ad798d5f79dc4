"""The command line's scale-out commands: ``broadcast --distributed`` and ``campaign ...``.

The distributed extra is imported only here, and only when such a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import IO, Any

from .._bulk import message_key
from ._input import MessageSource, Row, UsageError, message_source

__all__ = ["add_campaign_commands", "add_distributed_options", "broadcast_distributed"]

_HALTED = 3  # the exit status of a broadcast in which a channel was halted, as in-process


def _extra() -> ModuleType:
    try:
        from .. import distributed
    except ImportError as exc:
        raise UsageError(
            f"the distributed commands need the extra: pip install 'dialog360-async[distributed]' "
            f"({exc})"
        ) from None
    return distributed


def _redis_url(value: str | None) -> str:
    url = value or os.environ.get("D360_REDIS_URL")
    if not url:
        raise UsageError("no Redis URL: pass --redis URL or set D360_REDIS_URL")
    return url


def add_distributed_options(broadcast: argparse.ArgumentParser) -> None:
    """The ``broadcast`` options that hand the messages to taskiq workers instead."""
    group = broadcast.add_argument_group("scale-out (the distributed extra)")
    group.add_argument(
        "--distributed", metavar="REDIS_URL", help="enqueue for taskiq workers through this Redis"
    )
    group.add_argument(
        "--channel", metavar="NAME", help="channel name the workers know (D360_CHANNELS)"
    )
    group.add_argument("--campaign", metavar="ID", help="campaign id (default: a new one)")
    group.add_argument("--batch-size", type=int, default=100, help="messages per task (100)")
    group.add_argument(
        "--no-wait",
        action="store_true",
        help="enqueue and return, writing no results (not with --output); see: campaign status ID",
    )


def add_campaign_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """``dialog360 campaign status|wait|list``."""
    campaign = commands.add_parser(
        "campaign", help="status of distributed campaigns (the distributed extra)"
    )
    actions = campaign.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("status", "print a campaign's counts as JSON"),
        ("wait", "wait until a campaign has finished, showing progress"),
    ):
        sub = actions.add_parser(name, help=text, description=text, parents=[common])
        sub.add_argument("campaign_id", metavar="ID")
        sub.add_argument("--redis", metavar="URL", help="Redis URL (default: $D360_REDIS_URL)")
        sub.set_defaults(handler=_campaign)
    sub = actions.add_parser("list", help="list campaign ids", parents=[common])
    sub.add_argument("--redis", metavar="URL", help="Redis URL (default: $D360_REDIS_URL)")
    sub.set_defaults(handler=_campaign)


def _campaign(args: argparse.Namespace) -> int:
    extra = _extra()
    url = _redis_url(args.redis)
    if args.action == "list":
        for campaign_id in asyncio.run(extra.list_campaigns(url)):
            print(campaign_id)
        return 0
    if args.action == "status":
        status = asyncio.run(extra.campaign_status(args.campaign_id, url))
        print(json.dumps(status, indent=2, sort_keys=True))
        return 1 if status.get("state") == "missing" else 0
    summary = asyncio.run(
        extra.wait_campaign(args.campaign_id, url, on_progress=_progress_printer())
    )
    print(summary, file=sys.stderr)
    return 0 if summary.ok else 1


def _progress_printer() -> Any:
    last = [0.0]

    def show(summary: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0:
            last[0] = now
            print(
                f"sent={summary.sent} failed={summary.failed} unknown={summary.unknown} "
                f"pending={summary.pending} of {summary.messages}",
                file=sys.stderr,
                flush=True,
            )

    return show


def broadcast_distributed(args: argparse.Namespace) -> int:
    """Validate the input, then run it as a campaign on the taskiq workers."""
    extra = _extra()
    if not args.channel:
        raise UsageError("--distributed needs --channel NAME (a channel the workers know)")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if args.journal or args.resume:
        raise UsageError("--journal/--resume are local; a campaign keeps its ledger in Redis")
    if args.no_wait and args.output is not None:
        raise UsageError(
            "--output needs the results, and --no-wait does not wait for them: drop one "
            "(then see: dialog360 campaign status ID)"
        )
    with message_source(args) as source, contextlib.ExitStack() as stack:
        source.validate()
        out: IO[str] | None = None
        if not args.no_wait:
            out = sys.stdout
            if args.output not in (None, "-"):
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
        summary = asyncio.run(_campaign_run(extra, args, source, out))
    print(summary, file=sys.stderr, flush=True)
    if args.no_wait:
        return 0
    if summary.halted:
        return _HALTED
    return 0 if summary.ok else 1


def _key(row: Row) -> str:
    return row.key or message_key(row.message)


async def _campaign_run(
    extra: ModuleType, args: argparse.Namespace, source: MessageSource, out: IO[str] | None
) -> Any:
    summary = await extra.broadcast(
        ((args.channel, row.message, _key(row)) for row in source),
        broker=extra.make_broker(args.distributed),
        campaign_id=args.campaign,
        batch_size=args.batch_size,
        wait=out is not None,
        on_start=lambda campaign_id: print(f"campaign {campaign_id}", file=sys.stderr, flush=True),
        on_progress=_progress_printer(),
    )
    if out is not None:
        await _write_results(extra, args, summary, source, out)
    return summary


async def _write_results(
    extra: ModuleType, args: argparse.Namespace, summary: Any, source: MessageSource, out: IO[str]
) -> None:
    """One JSON line per input message, as the in-process broadcast writes (read from Redis)."""
    recipients: collections.deque[str] = collections.deque()  # as many as are being looked up

    def keys() -> Iterator[str]:
        for row in source:
            recipients.append(row.message.to)
            yield _key(row)

    reasons = {**summary.errors, **summary.halted}
    async for result in extra.campaign_results(summary.campaign_id, keys(), args.distributed):
        line = {
            "key": result.key,
            "to": recipients.popleft(),
            "status": result.status,
            "message_id": result.message_id,
            "error": _error_text(result, reasons.get(result.channel or args.channel)),
            "code": result.code,
            "attempts": None,  # not recorded in Redis
        }
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    out.flush()


def _error_text(result: Any, reason: str | None) -> str | None:
    if result.status == "sent":
        return None
    if result.status == "unknown":
        return "delivery unknown: it may have been sent, so it is never resent"
    if result.code is not None:
        return f"failed with error code {result.code}"
    if reason is not None:  # the channel's: halted, or not configured on a worker
        return reason
    return "not attempted" if result.status == "cancelled" else "failed (see the workers' logs)"
