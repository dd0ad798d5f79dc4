"""``python -m dialog360_async.testing``: run `FakeDialog360` as a standalone server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._transport import is_loopback
from ._delivery import WebhookPlan
from ._fake import FakeDialog360
from ._webhook_config import target

PROG = "python -m dialog360_async.testing"
RECORD_LIMIT = 10_000
SECRET_ENV = "DIALOG360_FAKE_WEBHOOK_SECRET"
_OPTION = re.compile(r"--[a-z][a-z0-9-]*")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors never echo a value: ``--api-key`` takes a key."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {_without_values(message)}\n")


def _without_values(message: str) -> str:
    # argparse quotes (%r) the values it names, except in the first two messages below.
    head, sep, rest = message.partition(": ")
    if head == "unrecognized arguments":
        names = (token.split("=", 1)[0] for token in rest.split())
        options = [name for name in names if _OPTION.fullmatch(name)]
        return f"{head}: {' '.join(options)}" if options else f"{head} (values not shown)"
    if head == "ambiguous option":
        typed, _, matches = rest.rpartition(" could match ")
        return f"{head}: {typed.split('=', 1)[0]} could match {matches}"
    if rest.startswith("invalid choice"):  # "...: invalid choice: VALUE (choose from ...)"
        return f"{head}{sep}invalid choice (choose from {rest.rpartition('(choose from ')[2]}"
    return message.split("'", 1)[0].split('"', 1)[0].rstrip(": ")


def _gateway(value: str) -> tuple[int, float]:
    count, _, seconds = value.partition("/")
    try:
        return int(count), float(seconds or "1")
    except ValueError:
        raise argparse.ArgumentTypeError("expected REQUESTS/SECONDS, e.g. 1/1") from None


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError("expected a whole number >= 0")
    return int(value)


def _ratio(value: str) -> float:
    try:
        ratio = float(value)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise argparse.ArgumentTypeError("expected a number from 0 to 1")
    return ratio


def _loopback_url(value: str) -> str:
    try:
        found = target(value)
    except ValueError:
        found = None
    if found is None or not found.loopback:
        raise argparse.ArgumentTypeError("expected an http(s) URL on 127.0.0.1, ::1 or localhost")
    return value


def _header(value: str) -> tuple[str, str]:
    name, sep, text = value.partition(":")
    try:
        target("http://127.0.0.1/", {name.strip(): text.strip()})
    except ValueError:
        sep = ""
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME:VALUE (a header name without underscores)")
    return name.strip(), text.strip()


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Serve a fake 360dialog API (Cloud at /, On-Premise at /v1, Partner at "
        "/api/v2) until Ctrl-C. Its counters (requests, sends, duplicates, throttled answers) "
        "are at GET /_fake/stats, the recorded requests at GET /_fake/requests (secret "
        "headers redacted), and POST /_fake/reset clears both.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8360, help="port, 0 = any (default 8360)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this D360-API-KEY (repeatable; default: any non-empty key)",
    )
    parser.add_argument("--throughput", type=float, default=80.0, help="msg/s per channel, 0=off")
    parser.add_argument(
        "--pair-rate-limit", type=float, default=None, metavar="S", help="seconds per user"
    )
    parser.add_argument(
        "--gateway-limit",
        type=_gateway,
        default=None,
        metavar="N/S",
        help="N requests per S seconds per API key",
    )
    parser.add_argument("--engage-all", action="store_true", help="every user is engaged")
    parser.add_argument("--list-shape", choices=("360dialog", "meta"), default="360dialog")
    parser.add_argument("--partner-id", default="examplePA")
    parser.add_argument("--partner-api-key", default="partner-key")
    parser.add_argument(
        "--partner-channel",
        action="append",
        default=[],
        metavar="CHANNEL_ID",
        help="register a Partner API channel (repeatable)",
    )
    parser.add_argument(
        "--record-limit",
        type=_count,
        default=RECORD_LIMIT,
        metavar="N",
        help=f"keep the last N requests for /_fake/requests (default {RECORD_LIMIT:,}); "
        "the counters count every request regardless",
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="record no requests (the counters still count)",
    )
    hooks = parser.add_argument_group(
        "webhooks",
        "POST status webhooks (sent, delivered, read or failed) for every accepted send, as "
        "360dialog does. Free-form sends to users outside the 24h window fail with 131047 "
        "(On-Premise 470) unless --engage-all. Clients may also set a channel's URL with "
        "POST /v1/configs/webhook.",
    )
    hooks.add_argument(
        "--webhook-url",
        type=_loopback_url,
        metavar="URL",
        help="default webhook of every channel (loopback only)",
    )
    hooks.add_argument(
        "--webhook-header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="header sent with every webhook POST (repeatable)",
    )
    hooks.add_argument(
        "--webhook-secret",
        metavar="SECRET",
        help="sign bodies: x-360dialog-signature = hex HMAC-SHA256 (better: the environment "
        "variable DIALOG360_FAKE_WEBHOOK_SECRET, which ps cannot show)",
    )
    hooks.add_argument(
        "--webhook-fail-ratio",
        type=_ratio,
        default=0.0,
        metavar="F",
        help="share of sends that fail (codes 131026, 131049, 131050, 130472)",
    )
    hooks.add_argument(
        "--webhook-read-ratio", type=_ratio, default=1.0, metavar="F", help="share read"
    )
    hooks.add_argument(
        "--webhook-batch", type=_count, default=1, metavar="N", help="statuses per POST (max)"
    )
    hooks.add_argument("--webhook-seed", type=int, default=None, metavar="N", help="random seed")
    return parser


def _plan(args: argparse.Namespace) -> WebhookPlan:
    return WebhookPlan(
        fail_ratio=args.webhook_fail_ratio,
        codes=(131026, 131049, 131050, 130472),
        read_ratio=args.webhook_read_ratio,
        max_batch=max(args.webhook_batch, 1),
        linger=0.05 if args.webhook_batch > 1 else 0.0,
        seed=args.webhook_seed,
    )


async def _serve(fake: FakeDialog360, partner_channels: Sequence[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with fake:
        for channel_id in partner_channels:
            fake.add_partner_channel(channel_id)
        print(fake.url, flush=True)
        print(
            f"FakeDialog360: Cloud {fake.url}/messages, On-Premise {fake.url}/v1, "
            f"Partner {fake.partner_url}, stats {fake.url}/_fake/stats; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        with contextlib.suppress(TimeoutError):  # let webhooks in flight end, briefly
            await asyncio.wait_for(fake.webhooks_idle(), 2.0)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the fake server from the command line; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        prog: the program name that ``--help`` and usage errors show.
    """
    args = _parser(prog).parse_args(argv)
    if not is_loopback(args.host):
        print(
            f"warning: binding {args.host}, a non-loopback interface: the fake accepts any key",
            file=sys.stderr,
        )
    fake = FakeDialog360(
        api_keys=args.api_keys,
        partner_id=args.partner_id,
        partner_api_key=args.partner_api_key,
        throughput=args.throughput or None,
        pair_rate_limit=args.pair_rate_limit or None,
        gateway_limit=args.gateway_limit,
        engage_all=args.engage_all,
        record_requests=not args.no_record,
        record_limit=args.record_limit,
        list_shape=args.list_shape,
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_headers=dict(args.webhook_header),
        webhook_secret=args.webhook_secret or os.environ.get(SECRET_ENV) or None,
        webhooks=_plan(args),
    )
    try:
        asyncio.run(_serve(fake, args.partner_channel))
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
