"""The one-shot commands of the ``dialog360`` tool, the client they share and the demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from .._cloud import Dialog360Client
from .._models import Location
from .._onprem import OnPremiseClient
from .._results import BlockResult, FailedUser, UserRef
from .._templates import Template, TemplateMessage, TextMessage
from ._demo import run_demo
from ._input import UsageError, load_contacts
from ._send import HEADER_KINDS, build_template

__all__ = [
    "PROG",
    "Client",
    "block",
    "blocked",
    "demo",
    "make_client",
    "report",
    "run",
    "say",
]

PROG = "dialog360"

Client = Dialog360Client | OnPremiseClient


def say(text: object) -> None:
    """One ``dialog360: ...`` line on stderr."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def make_client(args: argparse.Namespace, **options: Any) -> Client:
    """The client the global options ask for; the key comes from --api-key or the environment.

    ``options`` go to the client too (a broadcast's ``rate_limit``).
    """
    key = args.api_key or os.environ.get("D360_API_KEY")
    if not key:
        raise UsageError("no API key: set D360_API_KEY (or pass --api-key)")
    options["timeout"] = args.timeout
    base_url = args.base_url or os.environ.get("D360_BASE_URL")
    if base_url:
        options["base_url"] = base_url
    if args.on_premise:
        return OnPremiseClient(key, **options)
    return Dialog360Client(key, **options)


def run(command: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """A command handler that runs the coroutine function ``command`` in its own event loop."""

    def handler(args: argparse.Namespace) -> int:
        code: int = asyncio.run(command(args))
        return code

    return handler


def _template(args: argparse.Namespace) -> Template:
    # Built (and so validated) before any client exists: bad input sends nothing.
    template = Template(name=args.name, language=args.language, namespace=args.namespace)
    body = [(f"--param {i}", text) for i, text in enumerate(args.param or (), 1)]
    header = next(
        (
            (kind, (f"--header-{kind}", value))
            for kind in HEADER_KINDS
            if (value := getattr(args, f"header_{kind}")) is not None
        ),
        None,
    )
    return build_template(template, body, header)


async def send(args: argparse.Namespace) -> int:
    """``send-location``, ``send-contacts``, ``send-text``, ``send-template``: print the id."""
    if args.command == "send-location":
        where = Location(
            latitude=args.lat, longitude=args.lon, name=args.name, address=args.address
        )
        async with make_client(args) as client:
            sent = await client.send_location(args.to, where)
    elif args.command == "send-text":
        text = TextMessage(to=args.to, body=args.body, preview_url=args.preview_url)
        async with make_client(args) as client:
            sent = await client.send(text)
    elif args.command == "send-template":
        template = TemplateMessage(to=args.to, template=_template(args))
        async with make_client(args) as client:
            sent = await client.send(template)
    else:
        contacts = load_contacts(args.file)
        async with make_client(args) as client:
            sent = await client.send_contacts(args.to, contacts)
    print(sent.message_id)
    return 0


def _user(user: UserRef | FailedUser) -> str:
    # One form for block, unblock and blocked: the wa_id, digits only, as the API lists it.
    # On-Premise answers a block with no wa_id: the normalized input without "+" is that.
    return (user.wa_id or user.input or "").removeprefix("+")


def _failure_text(failed: FailedUser) -> str:
    reasons = [
        " ".join(filter(None, [e.message, f"({e.code})" if e.code is not None else None]))
        for e in failed.errors
    ]
    return f"failed {_user(failed)}: {'; '.join(reasons) or 'no reason given'}"


async def block(args: argparse.Namespace) -> int:
    """``block`` and ``unblock``: one line per user; exit 1 if any failed."""
    reason = getattr(args, "reason", None)  # unblock has no --reason
    if reason is not None and not args.on_premise:
        raise UsageError("--reason needs --on-premise: the Cloud API takes no block reason")
    async with make_client(args) as client:
        result: BlockResult
        if args.command == "unblock":
            result = await client.unblock_users(args.users)
        elif isinstance(client, OnPremiseClient):
            result = await client.block_users(args.users, reason=reason)
        else:
            result = await client.block_users(args.users)
    for ref in result.added:
        print(f"added {_user(ref)}")
    for ref in result.removed:
        print(f"removed {_user(ref)}")
    for failed in result.failed:
        print(_failure_text(failed))
    return 0 if result.ok else 1


async def blocked(args: argparse.Namespace) -> int:
    """``blocked``: one wa_id per line."""
    async with make_client(args) as client:
        async for user in client.list_blocked_users():
            print(_user(user))
    return 0


async def _report(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        assert isinstance(client, OnPremiseClient)  # report() checked --on-premise
        await client.report_user(
            args.user, reason=args.reason, block=args.block, message_id=args.message_id
        )
    print(f"reported {args.user}" + (" and blocked" if args.block else ""))
    return 0


def report(args: argparse.Namespace) -> int:
    """``report`` (On-Premise only)."""
    if not args.on_premise:
        raise UsageError("report needs --on-premise: the Cloud API has no report endpoint")
    return run(_report)(args)


def demo(args: argparse.Namespace) -> int:
    """``demo``: an offline broadcast through the bundled fake server."""
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
            keep_db=args.keep_db,
        )
    )
