"""``dialog360 suppressions list|add|remove DB``: a broadcast store's suppression list.

The store must exist (a mistyped path would otherwise create an empty one); the send lock is
not taken, so the list can be edited while a broadcast runs (the run sees the change next time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from typing import Any

from .._policy import Suppression, iso
from .._store import BroadcastStore
from ._input import UsageError
from ._report import _shown, check_store

__all__ = ["add_suppression_commands", "suppressions"]

_HOUR = 3600.0


def add_suppression_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``suppressions`` command and its actions."""
    text = "list, add or remove entries of a broadcast store's suppression list"
    command = commands.add_parser("suppressions", help=text, description=text)
    actions = command.add_subparsers(dest="action", metavar="ACTION", required=True)
    db = "a broadcast store (the --journal of a broadcast); must exist"

    sub = actions.add_parser("list", help="print the entries", parents=[common])
    sub.add_argument("db", metavar="DB", help=db)
    sub.add_argument("--json", action="store_true", help="one JSON object per line")

    text = "suppress a number: later broadcasts skip it (skipped, suppressed)"
    sub = actions.add_parser("add", help=text, description=text, parents=[common])
    sub.add_argument("db", metavar="DB", help=db)
    sub.add_argument("number", metavar="NUMBER", help="phone number or wa_id")
    sub.add_argument("--reason", default="added by hand", help="why ('added by hand')")
    sub.add_argument("--code", type=int, help="the error code behind it, if one is")
    sub.add_argument(
        "--marketing", action="store_true", help="only for marketing campaigns (default: all)"
    )
    sub.add_argument(
        "--hours", type=float, metavar="H", help="defer for H hours instead of for good"
    )

    sub = actions.add_parser("remove", help="take a number off the list", parents=[common])
    sub.add_argument("db", metavar="DB", help=db)
    sub.add_argument("number", metavar="NUMBER", help="phone number or wa_id")

    for parser in actions.choices.values():
        parser.set_defaults(handler=suppressions)


def suppressions(args: argparse.Namespace) -> int:
    """``suppressions``: run one action on the list."""
    hours = getattr(args, "hours", None)
    if hours is not None and not 0 < hours < math.inf:
        raise UsageError("--hours must be a number of hours > 0")
    check_store(args.db)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    async with BroadcastStore(args.db) as store:
        entries = store.suppressions
        if args.action == "list":
            found = list(entries)
            for entry in found:
                print(_json(entry) if args.json else _line(entry))
            print(f"{len(found)} suppressed number(s)", file=sys.stderr, flush=True)
        elif args.action == "add":
            until = None if args.hours is None else time.time() + args.hours * _HOUR
            entry = entries.add(
                args.number,
                reason=args.reason,
                code=args.code,
                scope="marketing" if args.marketing else "all",
                until=until,
            )
            print(_line(entry))
        elif not entries.remove(args.number):
            print(f"{_shown(args.number)} was not on the list", file=sys.stderr, flush=True)
            return 1
    return 0


def _json(entry: Suppression) -> str:
    return json.dumps(
        {
            "recipient": entry.recipient,
            "scope": entry.scope,
            "code": entry.code,
            "reason": entry.reason,
            "at": iso(entry.at),
            "until": None if entry.until is None else iso(entry.until),
            "campaign": entry.campaign,
            "lifts_on_reply": entry.lifts,
        },
        ensure_ascii=False,
    )


def _line(entry: Suppression) -> str:
    code = "-" if entry.code is None else str(entry.code)
    until = "for good" if entry.until is None else f"until {iso(entry.until)}"
    campaign = "" if entry.campaign is None else f"  campaign {_shown(entry.campaign)}"
    return (
        f"{entry.recipient}  {entry.scope:<9}  {code:>6}  {until}  {_shown(entry.reason)}{campaign}"
    )
