"""Bulk runs on a terminal: live progress, and ``dialog360 demo``, an offline broadcast.

The demo needs no API key and no network: it drives the real clients, session pool, rate
limiters and bulk sender against the in-process fake server, over several channels, into a
broadcast store. The fake posts each send's status webhooks to a real receiver on 127.0.0.1
that records them in the same store, and the demo ends with the store's delivery report,
checking that every message was sent once and that every sent message got its final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from aiohttp import web

from .._bulk import BulkSender, Item
from .._cloud import Dialog360Client
from .._models import Contact, ContactsMessage, Location, LocationMessage, Name, Phone
from .._outcomes import BulkSummary, Outcome
from .._pool import SessionPool
from .._report import DeliveryReport
from .._store import BroadcastStore
from ..webhooks import WebhookReceiver
from ._input import UsageError

if TYPE_CHECKING:
    from ..testing import FakeDialog360, WebhookPlan

__all__ = ["Progress", "demo_messages", "demo_plan", "run_demo", "send_with_progress"]

DEMO_CODES: Final = (131026, 131049, 131050, 130472)
"""The failure codes of the demo's undelivered messages (webhooks-and-statuses.md §5)."""
IDLE_TIMEOUT: Final = 60.0  # seconds the demo waits for the fake's last status webhooks
_PATH: Final = "/webhook"
_FORGET: Final = 10_000  # the fake's delivery records kept at most, so memory stays flat


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


def demo_plan(seed: int | None = None) -> WebhookPlan:
    """The demo's status webhooks: 2 % fail (codes `DEMO_CODES`), 60 % of the rest are read.

    Every status comes within half a second of its send, a few twice, some before the send's
    own answer, in batches of up to 50: what a real receiver must cope with, quickly.
    """
    from ..testing import WebhookPlan  # aiohttp.web's fake: loaded only when the demo runs

    return WebhookPlan(
        fail_ratio=0.02,
        codes=DEMO_CODES,
        read_ratio=0.6,
        seed=seed,
        sent_delay=0.05,
        delivered_delay=0.1,
        read_delay=0.2,
        early_ratio=0.02,
        duplicate_ratio=0.01,
        max_batch=50,
        linger=0.05,
    )


@contextlib.asynccontextmanager
async def _receiving(store: BroadcastStore) -> AsyncIterator[tuple[str, WebhookReceiver]]:
    """A `WebhookReceiver` into ``store`` on a free loopback port: ``(url, receiver)``."""
    receiver = WebhookReceiver(store=store)
    runner = web.AppRunner(receiver.app(_PATH), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}{_PATH}", receiver
    finally:
        await runner.cleanup()  # stops taking webhooks, then drains the receiver


async def _statuses_out(fake: FakeDialog360) -> bool:
    """Wait until the fake has posted every status it planned; False if it took too long."""
    try:
        async with asyncio.timeout(IDLE_TIMEOUT):
            await fake.webhooks_idle()
    except TimeoutError:
        return False
    return True


async def run_demo(
    *,
    count: int = 5000,
    channels: int = 5,
    rate: float = 80.0,
    concurrency: int = 32,
    seed: int | None = None,
    attempt_timeout: float = 30.0,
    keep_db: str | os.PathLike[str] | None = None,
    plan: WebhookPlan | None = None,
) -> int:
    """Broadcast ``count`` messages over ``channels`` fake channels; returns the exit status.

    Progress goes to stderr; the summary, the delivery report, what the receiver got and the
    fake's duplicate count to stdout. Exit status 0 only if every message was sent, the fake
    saw no duplicate and every sent message got its final status (delivered, read or failed).

    Args:
        count: messages to send.
        channels: channels, one API key each (``demo-channel-1``...).
        rate: messages per second per channel, for the sender and the fake; 0 = no limit.
        concurrency: requests in flight at once.
        seed: seed of the random message contents and of the fake's delivery decisions.
        attempt_timeout: seconds per attempt.
        keep_db: keep the broadcast store in this new file (for ``dialog360 report``);
            default: a temporary file, deleted at the end.
        plan: the fake's status webhooks (default: `demo_plan`); statuses that never reach
            a final one fail the check.

    Raises:
        UsageError: ``keep_db`` exists already (nothing was sent).
    """
    from ..testing import FakeDialog360  # aiohttp.web's fake: loaded only when the demo runs
    from ._report import render_table  # these import _commands, which imports this module
    from ._webhook import stats_line

    if keep_db is not None:
        _check_new(keep_db)
    keys = [f"demo-channel-{n}" for n in range(1, channels + 1)]
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dialog360-demo-") as folder:
        path = Path(folder, "demo.db") if keep_db is None else Path(keep_db)
        async with BroadcastStore(path) as store, _receiving(store) as (url, receiver):
            # Recording every request would grow memory with --count.
            fake = FakeDialog360(
                api_keys=keys,
                throughput=rate or None,
                record_requests=False,
                engage_all=True,  # every demo recipient has written first: no 24-hour window
                webhook_url=url,
                webhooks=demo_plan(seed) if plan is None else plan,
            )

            def seen(outcome: Outcome) -> None:
                if outcome.error is not None and not errors:
                    errors.append(f"{outcome.status}: {outcome.error}")
                # The fake remembers each send's planned statuses, which the demo never reads.
                if len(fake.delivery) >= _FORGET:
                    fake.delivery.clear()

            pool = SessionPool(limit=max(100, concurrency), timeout=attempt_timeout)
            async with fake, pool:
                clients = [pool.client(k, base_url=fake.url, rate_limit=rate or None) for k in keys]
                sender = BulkSender(
                    concurrency=concurrency,
                    rate_limit=rate or None,
                    journal=store,
                    on_outcome=seen,
                )
                shown_rate = f"{rate:g} msg/s per channel" if rate else "no rate limit"
                print(
                    f"demo: {count} messages over {channels} channels, {shown_rate}, "
                    f"concurrency {concurrency}, fake server at {fake.url}, "
                    f"status webhooks to {url}",
                    file=sys.stderr,
                    flush=True,
                )
                messages = demo_messages(clients, count, seed)
                summary = await send_with_progress(sender, messages, count)
                posted = await _statuses_out(fake)
                duplicates = sum(n - 1 for n in fake.duplicates().values())
            # A 0 s horizon: every status the fake planned has come, so none may be missing.
            report = await store.report(sender.campaign, horizon=0.0)
    print(summary)
    sys.stdout.write("\n" + render_table(report) + "\n")
    print(f"webhooks: {stats_line(receiver.stats)}")
    print(f"duplicates: {duplicates}")
    if errors:
        print(f"dialog360: first error: {errors[0]}", file=sys.stderr)
    complete = _complete(report, posted)
    if complete is not None:
        print(f"dialog360: {complete}", file=sys.stderr)
    ok = summary.sent == count and duplicates == 0 and complete is None
    return 0 if ok else 1


def _check_new(path: str | os.PathLike[str]) -> None:
    # An existing store would be resumed: its messages skipped as sent, nothing demonstrated.
    if os.path.lexists(path):
        raise UsageError(f"--keep-db: {os.fspath(path)} exists; name a new file")


def _complete(report: DeliveryReport, posted: bool) -> str | None:
    """Why the delivery report is not complete (every send with its final status), or None."""
    if not posted:
        return f"the fake's status webhooks were still going out after {IDLE_TIMEOUT:g} s"
    if report.unconfirmed or report.pending:
        return f"{report.unconfirmed + report.pending} message(s) got no final status"
    return None
