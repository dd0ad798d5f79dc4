"""``python -m dialog360_async.testing``: run `FakeDialog360` as a standalone server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from .._transport import is_loopback
from ._fake import FakeDialog360


def _gateway(value: str) -> tuple[int, float]:
    count, _, seconds = value.partition("/")
    try:
        return int(count), float(seconds or "1")
    except ValueError:
        raise argparse.ArgumentTypeError("expected REQUESTS/SECONDS, e.g. 1/1") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dialog360_async.testing",
        description="Serve a fake 360dialog API (Cloud at /, On-Premise at /v1, Partner at "
        "/api/v2) until Ctrl-C.",
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
    return parser


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
            f"Partner {fake.partner_url}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake server from the command line; returns the exit status."""
    args = _parser().parse_args(argv)
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
        # Nobody can read recorded requests out of a standalone process.
        record_requests=False,
        list_shape=args.list_shape,
        host=args.host,
        port=args.port,
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
