"""Bulk runs on a terminal: live progress, and ``dialog360 demo``, an offline broadcast.

The demo needs no API key and no network: it drives the real clients, session pool, rate
limiters and bulk sender against the in-process fake server, over several channels, and checks
with the fake that no recipient got a message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

from .._bulk import BulkSender, Item
from .._cloud import Dialog360Client
from .._models import Contact, ContactsMessage, Location, LocationMessage, Name, Phone
from .._outcomes import BulkSummary, Outcome
from .._pool import SessionPool

__all__ = ["Progress", "demo_messages", "run_demo", "send_with_progress"]


class Progress:
    """Live progress of a bulk run on stderr, read from ``sender.stats`` by a background task.

    A tqdm bar when stderr is a terminal (and tqdm is installed), else a plain line every
    ``interval`` seconds, which suits logs and pipes.

    Args:
        sender: the sender whose ``stats`` are shown.
        total: the number of messages, when known, for the bar's ETA.
        interval: seconds between two plain lines.
    """

    def __init__(self, sender: BulkSender, total: int | None, *, interval: float = 2.0) -> None:
        self._sender = sender
        self._total = total
        self._interval = interval
        self._bar: Any = None
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._warned = False

    def _text(self) -> str:
        stats = self._sender.stats
        return (
            f"sent={stats.sent} failed={stats.failed} unknown={stats.unknown} "
            f"rate={stats.rate:.1f} msg/s"
        )

    def _show(self) -> None:
        if self._bar is None:
            print(self._text(), file=sys.stderr, flush=True)
            return
        stats = self._sender.stats
        self._bar.update(stats.done - self._bar.n)
        self._bar.set_postfix_str(self._text(), refresh=True)

    def _note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    async def _tick(self) -> None:
        shown = time.monotonic()
        while True:
            await asyncio.sleep(0.2)
            # Ctrl-C cancels the task running the sender, which then drains for a while.
            owner = self._owner
            if owner is not None and owner.cancelling() and not self._warned:
                self._warned = True
                self._note(
                    "dialog360: stopping: letting sends in flight finish; "
                    "press Ctrl-C again to stop at once"
                )
            if self._bar is not None or time.monotonic() - shown >= self._interval:
                shown = time.monotonic()
                self._show()

    async def __aenter__(self) -> Self:
        if sys.stderr.isatty():
            with contextlib.suppress(ImportError):  # tqdm is the optional `cli` extra
                from tqdm import tqdm

                self._bar = tqdm(total=self._total, unit="msg", file=sys.stderr, smoothing=0.1)
        self._owner = asyncio.current_task()
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._bar is not None:
            self._show()
            self._bar.close()


async def send_with_progress(
    sender: BulkSender, items: Iterable[Item], total: int | None, *, journal: str | None = None
) -> BulkSummary:
    """Run ``sender`` over ``items`` with progress on stderr; returns the summary.

    On cancellation (Ctrl-C) it reports the counts so far, and how to resume, before
    re-raising.
    """
    try:
        async with Progress(sender, total):
            return await sender.send_all(items)
    except asyncio.CancelledError:
        stats = sender.stats
        print(
            f"dialog360: interrupted after {stats.elapsed:.1f} s: sent={stats.sent} "
            f"failed={stats.failed} unknown={stats.unknown} cancelled={stats.cancelled}",
            file=sys.stderr,
        )
        if journal is not None:
            print(
                f"dialog360: run the same command with --resume to continue from {journal}",
                file=sys.stderr,
            )
        raise


def demo_messages(
    clients: Sequence[Dialog360Client], count: int, seed: int | None = None
) -> Iterator[Item]:
    """``count`` messages, alternately location and contacts, each to its own recipient.

    Recipients are spread round-robin over ``clients``; contents are random (reproducible
    with ``seed``). Built lazily, one at a time.
    """
    rng = random.Random(seed)
    for i in range(count):
        to = f"+1555{i:08d}"
        message: LocationMessage | ContactsMessage
        if i % 2 == 0:
            where = Location(
                latitude=round(rng.uniform(-90, 90), 6),
                longitude=round(rng.uniform(-180, 180), 6),
                name=f"Demo place {i}",
            )
            message = LocationMessage(to=to, location=where)
        else:
            card = Contact(
                name=Name(formatted_name=f"Demo Contact {i}", first_name="Demo"),
                phones=[Phone(phone=f"+1555{rng.randrange(10**8):08d}", type="CELL")],
            )
            message = ContactsMessage(to=to, contacts=[card])
        yield clients[i % len(clients)], message


async def run_demo(
    *,
    count: int = 5000,
    channels: int = 5,
    rate: float = 80.0,
    concurrency: int = 32,
    seed: int | None = None,
    attempt_timeout: float = 30.0,
) -> int:
    """Broadcast ``count`` messages over ``channels`` fake channels; returns the exit status.

    Progress goes to stderr; the summary and the fake's duplicate count to stdout. Exit
    status 0 only if every message was sent and the fake saw no duplicate.

    Args:
        count: messages to send.
        channels: channels, one API key each (``demo-channel-1``...).
        rate: messages per second per channel, for the sender and the fake; 0 = no limit.
        concurrency: requests in flight at once.
        seed: seed of the random message contents.
        attempt_timeout: seconds per attempt.
    """
    from ..testing import FakeDialog360  # aiohttp.web: loaded only when the demo runs

    keys = [f"demo-channel-{n}" for n in range(1, channels + 1)]
    # Recording every request would grow memory with --count.
    fake = FakeDialog360(api_keys=keys, throughput=rate or None, record_requests=False)
    async with fake, SessionPool(limit=max(100, concurrency), timeout=attempt_timeout) as pool:
        clients = [pool.client(key, base_url=fake.url, rate_limit=rate or None) for key in keys]
        errors: list[str] = []

        def first_error(outcome: Outcome) -> None:
            if outcome.error is not None and not errors:
                errors.append(f"{outcome.status}: {outcome.error}")

        sender = BulkSender(
            concurrency=concurrency, rate_limit=rate or None, on_outcome=first_error
        )
        shown_rate = f"{rate:g} msg/s per channel" if rate else "no rate limit"
        print(
            f"demo: {count} messages over {channels} channels, {shown_rate}, "
            f"concurrency {concurrency}, fake server at {fake.url}",
            file=sys.stderr,
            flush=True,
        )
        summary = await send_with_progress(sender, demo_messages(clients, count, seed), count)
        duplicates = sum(n - 1 for n in fake.duplicates().values())
    print(summary)
    print(f"duplicates: {duplicates}")
    if errors:
        print(f"dialog360: first error: {errors[0]}", file=sys.stderr)
    return 0 if summary.sent == count and duplicates == 0 else 1
