"""``dialog360 webhook serve``: receive status webhooks into a broadcast store.

The receiver may start before the broadcast, so the store is created if missing; it takes no
send lock, so a broadcast can write to the same file while it runs. Header values and the
signature secret are secrets: no line this command prints holds them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from .._secret import Secret
from .._store import BroadcastStore
from ..webhooks import WebhookReceiver, WebhookStats
from ._input import UsageError

__all__ = ["auth_headers", "serve", "stats_line"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110)
_MAX_PORT = 65535


def auth_headers(given: Sequence[str] | None) -> dict[str, Secret]:
    """``NAME:VALUE`` options as headers, each value wrapped at once.

    Raises:
        UsageError: one is malformed or repeated (the message never holds a value).
    """
    headers: dict[str, Secret] = {}
    for number, item in enumerate(given or (), start=1):
        name, colon, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.fullmatch(name) or not value or not value.isprintable():
            raise UsageError(
                f"--auth-header #{number}: must be NAME:VALUE, NAME a header name and VALUE "
                "printable, not empty (the value is not shown)"
            )
        if name.lower() in (known.lower() for known in headers):
            raise UsageError(f"--auth-header #{number}: header {name} given twice")
        headers[name] = Secret(value)
    return headers


def _signature_secret(variable: str | None) -> Secret | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise UsageError(f"--signature-secret-env: ${variable} is not set or empty")
    return Secret(value)


def stats_line(stats: WebhookStats) -> str:
    """What the receiver did, in one line."""
    line = (
        f"received {stats.received} webhook(s): {stats.statuses} status(es), "
        f"{stats.messages} message(s), {stats.duplicates} duplicate(s), "
        f"{stats.invalid} invalid, {stats.rejected} rejected (401/413)"
    )
    if stats.deferred or stats.store_errors:
        line += f", {stats.deferred} deferred (503), {stats.store_errors} store error(s) (500)"
    return line


def serve(args: argparse.Namespace) -> int:
    """``webhook serve``: run a receiver until SIGINT or SIGTERM."""
    if not 0 <= args.port <= _MAX_PORT:
        raise UsageError(f"--port must be 0..{_MAX_PORT} (0: any free port)")
    if not args.path.startswith("/"):
        raise UsageError("--path must start with /")
    headers = auth_headers(args.auth_header)
    secret = _signature_secret(args.signature_secret_env)
    return asyncio.run(_serve(args, headers, secret))


async def _serve(
    args: argparse.Namespace, headers: dict[str, Secret], secret: Secret | None
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with BroadcastStore(args.db) as store:
        receiver = WebhookReceiver(store=store, auth_headers=headers, signature_secret=secret)
        runner = web.AppRunner(receiver.app(args.path), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, args.host, args.port)
            await site.start()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            host, port = runner.addresses[0][:2]
            host = f"[{host}]" if ":" in host else host
            print(f"http://{host}:{port}{args.path}", flush=True)
            print(f"receiving webhooks into {args.db}; stop with Ctrl-C", file=sys.stderr)
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await runner.cleanup()  # stops taking requests, then closes the receiver
    print(stats_line(receiver.stats), file=sys.stderr, flush=True)
    return 0
