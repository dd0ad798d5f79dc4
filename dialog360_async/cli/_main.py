"""The ``dialog360`` command-line tool (also ``python -m dialog360_async``).

Sends one message, manages the blocklist, runs a resumable broadcast from a JSONL or CSV file,
and runs an offline demo broadcast against the bundled fake server. Expected failures end in
one ``dialog360: ...`` line on stderr: exit 1 for API and file errors, 2 for bad usage or input,
130 after Ctrl-C. The API key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from .._bulk import BulkSender, message_key
from .._cloud import Dialog360Client
from .._models import Location, Message
from .._onprem import OnPremiseClient
from .._outcomes import Outcome
from .._results import BlockResult, FailedUser
from .._version import __version__
from ..errors import DeliveryUnknownError, Dialog360Error, ValidationError
from ._demo import run_demo, send_with_progress
from ._distributed import (
    add_campaign_commands,
    add_distributed_options,
    broadcast_distributed,
)
from ._input import InputError, MessageSource, UsageError, load_contacts

__all__ = ["main"]

PROG = "dialog360"
_INTERRUPTED = 130

Client = Dialog360Client | OnPremiseClient


def _say(text: object) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


# -- clients --------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    key = args.api_key or os.environ.get("D360_API_KEY")
    if not key:
        raise UsageError("no API key: set D360_API_KEY (or pass --api-key)")
    options: dict[str, Any] = {"timeout": args.timeout}
    base_url = args.base_url or os.environ.get("D360_BASE_URL")
    if base_url:
        options["base_url"] = base_url
    if args.on_premise:
        return OnPremiseClient(key, **options)
    return Dialog360Client(key, **options)


# -- one-shot commands ----------------------------------------------------------------------


async def _send(args: argparse.Namespace) -> int:
    if args.command == "send-location":
        where = Location(
            latitude=args.lat, longitude=args.lon, name=args.name, address=args.address
        )
        async with _client(args) as client:
            sent = await client.send_location(args.to, where)
    else:
        contacts = load_contacts(args.file)
        async with _client(args) as client:
            sent = await client.send_contacts(args.to, contacts)
    print(sent.message_id)
    return 0


def _failure_text(failed: FailedUser) -> str:
    reasons = [
        " ".join(filter(None, [e.message, f"({e.code})" if e.code is not None else None]))
        for e in failed.errors
    ]
    return f"failed {failed.input or failed.wa_id}: {'; '.join(reasons) or 'no reason given'}"


async def _block(args: argparse.Namespace) -> int:
    reason = getattr(args, "reason", None)  # unblock has no --reason
    if reason is not None and not args.on_premise:
        raise UsageError("--reason needs --on-premise: the Cloud API takes no block reason")
    async with _client(args) as client:
        result: BlockResult
        if args.command == "unblock":
            result = await client.unblock_users(args.users)
        elif isinstance(client, OnPremiseClient):
            result = await client.block_users(args.users, reason=reason)
        else:
            result = await client.block_users(args.users)
    for ref in result.added:
        print(f"added {ref.input or ref.wa_id}")
    for ref in result.removed:
        print(f"removed {ref.input or ref.wa_id}")
    for failed in result.failed:
        print(_failure_text(failed))
    return 0 if result.ok else 1


async def _blocked(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        async for user in client.list_blocked_users():
            print(user.wa_id or user.input)
    return 0


async def _report(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        assert isinstance(client, OnPremiseClient)  # _cmd_report checked --on-premise
        await client.report_user(
            args.user, reason=args.reason, block=args.block, message_id=args.message_id
        )
    print(f"reported {args.user}" + (" and blocked" if args.block else ""))
    return 0


def _run(command: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        code: int = asyncio.run(command(args))
        return code

    return run


def _cmd_report(args: argparse.Namespace) -> int:
    if not args.on_premise:
        raise UsageError("report needs --on-premise: the Cloud API has no report endpoint")
    return _run(_report)(args)


# -- broadcast ------------------------------------------------------------------------------


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
        "attempts": outcome.attempts,
    }


def _cmd_broadcast(args: argparse.Namespace) -> int:
    if args.distributed:
        return broadcast_distributed(args)
    journal: str | None = args.journal
    if args.resume and journal is None:
        raise UsageError("--resume needs --journal FILE")
    if journal is not None and os.path.exists(journal) and not args.resume:
        raise UsageError(
            f"journal {journal} exists: add --resume to continue that run, or name a new file"
        )
    if args.resume and journal is not None and not os.path.exists(journal):
        _say(f"no journal at {journal} yet: starting a fresh run")
    if args.concurrency < 1 or args.rate < 0:
        raise UsageError("--concurrency must be >= 1 and --rate >= 0")
    client = _client(args)  # before reading the input: a missing key should fail fast
    with MessageSource(args.input, args.format) as source:
        total = source.validate()
        with contextlib.ExitStack() as stack:
            out: IO[str] = sys.stdout
            if args.output not in (None, "-"):
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            return asyncio.run(_broadcast(args, client, source, total, out))


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
        journal=args.journal,
        key=key,
        on_outcome=write,
    )
    async with client:
        summary = await send_with_progress(sender, items(), total, journal=args.journal)
    out.flush()
    print(summary, file=sys.stderr, flush=True)
    return 0 if summary.ok else 1


# -- demo and fake server -------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.count < 0 or args.channels < 1 or args.concurrency < 1 or args.rate < 0:
        raise UsageError("--count >= 0, --channels >= 1, --concurrency >= 1 and --rate >= 0")
    return asyncio.run(
        run_demo(
            count=args.count,
            channels=args.channels,
            rate=args.rate,
            concurrency=args.concurrency,
            seed=args.seed,
            attempt_timeout=args.timeout,
        )
    )


# -- command line ---------------------------------------------------------------------------

_BROADCAST_HELP = """\
INPUT is a .jsonl file (one message per line in the wire shape, e.g.
  {"to": "+4915112345678", "type": "location", "location": {"latitude": 52.5, "longitude": 13.4}}
  {"to": "+4915112345678", "type": "contacts", "contacts": [{"name": {...}, "phones": [...]}]}
with an optional "key"), a .csv file with a header line, either
  to,latitude,longitude[,name,address]            -> location messages
  to,formatted_name,first_name,last_name,phone    -> one-contact messages
(plus an optional key column), or - for JSONL on standard input.

The whole input is validated first: a bad line stops the command with "INPUT:LINE: reason"
and exit code 2 before anything is sent. Then it is streamed (memory stays flat).

Writes one JSON line per message to --output: key, to, status (sent, failed, unknown,
skipped, cancelled), message_id, error, code, attempts. "unknown" means the message may or
may not have been delivered; it is never resent, not even with --resume. The summary goes to
stderr. Exit code 0 only if every message was sent (or skipped as already sent).

Keys (default: recipient plus a hash of the content) must be unique. With --journal, every
send is recorded; after a crash or Ctrl-C, run the same command with --resume to send only
what was not sent yet.
"""


_GLOBAL_DEFAULTS: dict[str, Any] = {
    "api_key": None,
    "base_url": None,
    "on_premise": False,
    "timeout": 30.0,
}


def _global_options(parser: argparse.ArgumentParser, *, shown: bool) -> None:
    # Accepted before and after the command, documented once. SUPPRESS (main fills in the
    # defaults) keeps the command's copy of an option from resetting a value given before it.
    default = argparse.SUPPRESS

    def text(words: str) -> str:
        return words if shown else argparse.SUPPRESS

    parser.add_argument(
        "--api-key",
        default=default,
        metavar="KEY",
        help=text("the channel's D360-API-KEY (default: $D360_API_KEY)"),
    )
    parser.add_argument(
        "--base-url",
        default=default,
        metavar="URL",
        help=text("API root (default: $D360_BASE_URL, else the 360dialog URL of the API)"),
    )
    parser.add_argument(
        "--on-premise",
        action="store_true",
        default=default,
        help=text("use the On-Premise API (OnPremiseClient)"),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default,
        metavar="S",
        help=text("seconds per attempt (30)"),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send WhatsApp location and contacts messages and manage blocklists "
        "through the 360dialog API.",
        epilog="The options above may also follow the command. Set the API key in the "
        "D360_API_KEY environment variable rather than with --api-key: command lines are "
        "visible to other users of the machine. 'dialog360 demo' needs no key and no network. "
        "Exit status: 0 ok, 1 API or file error (or a message not sent), 2 bad usage or "
        "input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, shown=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, shown=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    sub = command("send-location", _run(_send), "send a location message; prints its id")
    sub.add_argument("--to", required=True, metavar="NUMBER", help="recipient phone or wa_id")
    sub.add_argument("--lat", required=True, type=float, help="latitude, -90..90")
    sub.add_argument("--lon", required=True, type=float, help="longitude, -180..180")
    sub.add_argument("--name", help="name of the place")
    sub.add_argument("--address", help="address of the place")

    sub = command("send-contacts", _run(_send), "send contact cards; prints the message id")
    sub.add_argument("--to", required=True, metavar="NUMBER", help="recipient phone or wa_id")
    sub.add_argument(
        "--file",
        required=True,
        metavar="JSON",
        help='one contact or a list, in the wire shape, e.g. {"name": {"formatted_name": '
        '"Ada", "first_name": "Ada"}, "phones": [{"phone": "+441234567"}]}; - = stdin',
    )

    sub = command("block", _run(_block), "block users; prints added/failed per user")
    sub.add_argument("users", nargs="+", metavar="USER")
    sub.add_argument("--reason", help="block reason, under 60 characters (On-Premise only)")
    sub = command("unblock", _run(_block), "unblock users; prints removed/failed per user")
    sub.add_argument("users", nargs="+", metavar="USER")
    command("blocked", _run(_blocked), "list blocked users, one wa_id per line")

    sub = command("report", _cmd_report, "report a user to WhatsApp (On-Premise only)")
    sub.add_argument("user", metavar="USER")
    sub.add_argument("--reason", help="why, under 60 characters")
    sub.add_argument("--block", action="store_true", help="block the user too")
    sub.add_argument("--message-id", help="the offending message (default: the last 5)")

    sub = commands.add_parser(
        "broadcast",
        help="send every message of a JSONL or CSV file, resumably",
        description="Send every message of INPUT at a bounded concurrency and rate.",
        epilog=_BROADCAST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub.set_defaults(handler=_cmd_broadcast)
    sub.add_argument("input", metavar="INPUT", help="a .jsonl or .csv file, or - for stdin")
    sub.add_argument("--format", choices=("jsonl", "csv"), help="override the guess by suffix")
    sub.add_argument("--output", metavar="FILE", help="results as JSONL (default: stdout)")
    sub.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    sub.add_argument("--rate", type=float, default=80.0, help="msg/s, 0 = no limit (80)")
    sub.add_argument("--journal", metavar="FILE", help="record every send here (JSONL)")
    sub.add_argument("--resume", action="store_true", help="continue the run recorded in --journal")
    add_distributed_options(sub)
    add_campaign_commands(commands, common)

    sub = command(
        "demo",
        _cmd_demo,
        "offline broadcast through the bundled fake server (no key, no network)",
    )
    sub.add_argument("--count", type=int, default=5000, help="messages to send (5000)")
    sub.add_argument("--channels", type=int, default=5, help="channels, one key each (5)")
    sub.add_argument("--rate", type=float, default=80.0, help="msg/s per channel, 0 = off (80)")
    sub.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    sub.add_argument("--seed", type=int, help="seed of the random message contents")

    commands.add_parser(
        "fake-server",
        add_help=False,
        help="run the fake 360dialog server (see: dialog360 fake-server --help)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dialog360`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "fake-server":
            from ..testing.__main__ import main as serve

            return serve(extra)
        if extra:
            # Values are left out: a misspelt option may be followed by the API key.
            shown = " ".join(t.split("=", 1)[0] for t in extra if t.startswith("-"))
            parser.error(f"unrecognized arguments: {shown or 'extra values'}")
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        for name, value in _GLOBAL_DEFAULTS.items():
            if not hasattr(args, name):
                setattr(args, name, value)
    except SystemExit as exc:  # argparse exits after --help, --version or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        _say("interrupted")
        return _INTERRUPTED
    except (UsageError, InputError, ValidationError) as exc:
        _say(exc)
        return 2
    except (Dialog360Error, OSError) as exc:
        _say(exc)
        return 1
    return code
