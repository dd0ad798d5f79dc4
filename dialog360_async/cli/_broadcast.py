"""``dialog360 broadcast``: every message of a JSONL or CSV file, resumably, with results.

Everything that can be refused is refused before a file is opened for writing or a message is
sent: clashing paths, a ``--resume`` without its journal, bad or repeated input lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from .._bulk import BulkSender, message_key
from .._models import Message
from .._outcomes import Outcome, reason_of
from .._policy import CampaignPolicy
from ..errors import DeliveryUnknownError
from ._commands import Client, make_client, say
from ._demo import send_with_progress
from ._distributed import broadcast_distributed
from ._input import MessageSource, UsageError, message_source

__all__ = ["HALTED", "broadcast"]

HALTED = 3
"""Exit status of a broadcast in which a channel was halted (design: "Broadcasts that behave")."""


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links and symlinks included
    except OSError:  # one does not exist yet: then only the same resolved name is the same file
        return os.path.realpath(a) == os.path.realpath(b)


def _check_paths(args: argparse.Namespace) -> None:
    named = [("INPUT", args.input), ("--output", args.output), ("--journal", args.journal)]
    files = [(label, path) for label, path in named if path not in (None, "-")]
    for i, (label, path) in enumerate(files):
        for other, other_path in files[i + 1 :]:
            if _same_file(path, other_path):
                raise UsageError(
                    f"{label} and {other} are the same file ({other_path}): name different files"
                )


def _check_journal(args: argparse.Namespace) -> None:
    journal: str | None = args.journal
    if journal is None:
        if args.resume:
            raise UsageError("--resume needs --journal FILE")
        return
    # A mistyped path must not start a fresh run that sends everything again.
    if args.resume and not os.path.exists(journal):
        raise UsageError(f"--resume: no journal at {journal}: check the path")
    if not args.resume and os.path.exists(journal):
        raise UsageError(
            f"journal {journal} exists: add --resume to continue that run, or name a new file"
        )


def _ends_inside_a_line(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            if file.tell() == 0:
                return False
            file.seek(-1, os.SEEK_END)
            return file.read(1) != b"\n"
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _output(path: str | None, *, append: bool) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    # A resumed run adds its results to the first run's, whose message ids exist nowhere else.
    torn = append and _ends_inside_a_line(path)  # killed mid-write: keep the next line whole
    # Line-buffered: the results of a run that is killed survive up to its last outcome.
    with open(path, "a" if append else "w", encoding="utf-8", buffering=1) as out:
        if torn:
            out.write("\n")
        yield out


def broadcast(args: argparse.Namespace) -> int:
    """``broadcast``: validate the whole input, then send it; see the command's help."""
    _check_paths(args)
    if args.distributed and (args.outside_window != "send" or args.utility):
        raise UsageError("--outside-window and --utility need a broadcast without --distributed")
    if args.distributed:
        return broadcast_distributed(args)
    _check_journal(args)
    if args.outside_window != "send" and args.journal is None:
        raise UsageError("--outside-window skip needs --journal (its webhooks show who wrote)")
    if args.concurrency < 1 or args.rate < 0 or not args.outage_timeout >= 0:
        raise UsageError("--concurrency must be >= 1, --rate and --outage-timeout >= 0")
    # Before reading the input: a missing key should fail fast. --rate is the channel's limit
    # (0: the client is not paced at all).
    client = make_client(args, rate_limit=args.rate or None)
    with message_source(args) as source:
        total = source.validate(on_duplicate=say)
        with _output(args.output, append=args.resume) as out:
            return asyncio.run(_broadcast(args, client, source, total, out))


def _result(outcome: Outcome) -> dict[str, Any]:
    error = outcome.error
    code = getattr(error, "code", None)
    if code is None and isinstance(error, DeliveryUnknownError) and error.cause is not None:
        code = error.cause.code
    return {
        "key": outcome.key,
        "to": outcome.message.to,
        "status": outcome.status,
        "message_id": None if outcome.result is None else outcome.result.message_id,
        "error": None if error is None else str(error) or type(error).__name__,
        "code": code,
        "reason": None if outcome.ok or error is None else reason_of(outcome)[0],
        "attempts": outcome.attempts,
    }


async def _broadcast(
    args: argparse.Namespace, client: Client, source: MessageSource, total: int, out: IO[str]
) -> int:
    # The sender asks for a message's key as it takes it from the iterator, right after
    # `items` yields it, so this map never holds more than one entry.
    given: dict[int, str] = {}

    def key(message: Message) -> str:
        return given.pop(id(message), None) or message_key(message)

    def items() -> Iterator[Message]:
        for row in source:
            if row.key is not None:
                given[id(row.message)] = row.key
            yield row.message

    def write(outcome: Outcome) -> None:
        out.write(json.dumps(_result(outcome), ensure_ascii=False) + "\n")

    sender = BulkSender(
        client,
        concurrency=args.concurrency,
        rate_limit=args.rate or None,
        outage_timeout=args.outage_timeout,
        journal=args.journal,
        key=key,
        on_outcome=write,
        policy=CampaignPolicy(marketing=not args.utility),
        outside_window=args.outside_window,
    )
    async with client:
        summary = await send_with_progress(sender, items(), total, journal=args.journal)
    out.flush()
    print(summary, file=sys.stderr, flush=True)
    if summary.halted:
        return HALTED
    return 0 if summary.ok else 1
