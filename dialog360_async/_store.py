"""BroadcastStore: one SQLite database per broadcast, the bulk sender's journal.

Each message is one row keyed by (campaign, key). Its claim (``attempting``) is committed before
the send and its outcome settles it after, so a re-run knows three kinds of message: sent (skip
it), failed, cancelled or never attempted (send it), and in doubt, attempting with no result or
``unknown`` (never resend it blindly: it may have been delivered).

Writes run on the event loop's thread in WAL mode with ``synchronous=NORMAL``: a commit is a write
to the WAL, no fsync, so a killed process loses nothing the OS has, and a thread of the store
copies the WAL back into the database (_store_checkpoint.py), so no commit stalls the loop doing
it. Claims and settles wait in memory and a commit writes them all in one transaction, so the write
lock is held only while it runs: other processes (a webhook receiver) write to the file too. A
claim is committed before its send (group commit): ``claim_message`` waits one loop iteration for
the commit its claim shares with those of every worker; a claim made one send ahead
(``claim_nowait``) is committed by ``confirm`` unless a commit took it already. A settle lost by a
crash leaves its row attempting, in doubt, which is safe. Only one sender at a time (see
_store_file.py). Practice: ../shared/docs/reliability-notes.md §3; design.md "The broadcast store".

The store is also a :class:`WebhookStore`: status webhooks settle its rows' delivery
(_store_delivery.py), from this process or another one (a receiver), with or without a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, cast

from ._journal import JournalError, State, check_name, new_campaign
from ._outcomes import Outcome
from ._policy import CampaignPolicy
from ._report import DeliveryReport
from ._store_checkpoint import Checkpointer
from ._store_delivery import WebhookLog, adopt_settled
from ._store_file import (
    OUTCOMES,
    START,
    UNREADABLE,
    SendLock,
    connect,
    insert_claims,
    outcome_record,
    settle_record,
    tag_prefix,
    text,
    warn_unreadable,
    write_settles,
)
from ._store_reach import WINDOW, SuppressionList, police, save_policy, window_of
from ._store_report import campaigns, in_doubt, report
from .errors import ValidationError
from .webhooks._dedup import DEDUP_TTL
from .webhooks._models import Notification

__all__ = ["BroadcastStore"]

logger = logging.getLogger("dialog360_async")

FLUSH: Final = 0.1  # seconds settles (and claims made ahead) wait for a commit at most
_PENDING: Final = object()  # the fate of a claim not committed yet


class BroadcastStore:
    """The journal and delivery state of broadcasts in one SQLite file (a :class:`Ledger`).

    ``BulkSender(journal=path)`` opens one for each run; pass a store instead to keep it open
    after the run. Only one sender may use a store at a time; others are refused with
    :class:`JournalError`.

    Args:
        path: the database file; created if missing (a file of schema 1 is upgraded).
        clock: Unix time, for the dedup ttl, orphans and the report's horizon.

    Raises:
        JournalError: the file is not a broadcast store (e.g. a JSONL journal of an earlier
            version) or cannot be opened.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ValidationError("path", f"must be a file path, got {path!r}")
        if not callable(clock):
            raise ValidationError("clock", f"must be callable, got {clock!r}")
        self.path = Path(path)
        self._clock = clock
        self.campaign: str | None = None
        """The campaign of the current run (or the last one)."""
        self.run_id: int | None = None
        """The current run (its row in the ``runs`` table), while one is going."""
        self.unreadable: list[str] = []
        """Keys whose records could not be read (e.g. edited by hand): treated as in doubt."""
        self._db: sqlite3.Connection | None = connect(self.path)
        try:
            self._prefix = tag_prefix(self._db)  # of the callback tags: the row id follows
        except sqlite3.Error as exc:
            self._db.close()
            raise JournalError(f"cannot read the broadcast store {self.path}: {exc}") from None
        self._lock = SendLock(self.path)
        self._checkpoints = Checkpointer(self.path)
        # Claims and settles wait in memory for the next commit, which writes them all in one
        # transaction: the write lock is held only while it runs (a receiver writes too).
        self._claims: list[tuple[Any, ...]] = []
        self._settles: list[tuple[Any, ...]] = []
        self._fates: dict[str, Any] = {}  # each claim's verdict, until its claimer reads it
        self._claimed: dict[str, int] = {}  # the row of each claim not settled yet
        self._soon: asyncio.Handle | None = None  # the commit of claims waiting for it
        self._later: asyncio.TimerHandle | None = None  # the commit of the rest
        self._broken: JournalError | None = None
        self._unreadable: set[str] = set()
        self._unreadable_seen: set[str] = set()
        self._webhooks = WebhookLog(self.path, self._open, self._commit, clock, self._prefix)
        self.suppressions = SuppressionList(self._open, self._writing, clock)
        """The suppression list that every run of this store honours (_store_reach.py)."""
        self._webhooks.after = self.suppressions.after_webhooks

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"BroadcastStore({str(self.path)!r}, campaign={self.campaign!r})"

    # -- runs -------------------------------------------------------------------------------

    def begin(self, campaign: str | None = None, *, policy: CampaignPolicy | None = None) -> int:
        """Take the store for sending and start a run; returns its id.

        Args:
            campaign: the campaign this run sends; default: the store's last campaign (so
                that running again resumes it), or a new name for a new store.
            policy: the rules its failures are judged by (kept with the campaign, so that a
                receiver in another process applies them); default: :class:`CampaignPolicy`.

        Raises:
            JournalError: another sender (in this or another process) is using the store, or
                the run could not be recorded.
        """
        if campaign is not None:
            check_name(campaign, "campaign")
        db = self._open()
        if self._lock.held:
            raise JournalError(f"{self.path} is already sending a run; one run at a time")
        self._lock.acquire(self.path)
        try:
            chosen = campaign or self.last_campaign() or new_campaign()
            with self._writing():
                started = (chosen, os.getpid(), self._clock())
                run = cast(int, db.execute(START, started).lastrowid)
                save_policy(db, chosen, policy or CampaignPolicy())
                police(db, self._clock())
            self.suppressions.load()
            found = [text(row[0]) for row in db.execute(UNREADABLE, (chosen,))]
        except sqlite3.Error as exc:
            self._lock.release()
            raise JournalError(f"cannot read the broadcast store {self.path}: {exc}") from None
        except BaseException:
            self._lock.release()
            raise
        self.campaign, self.run_id, self._broken = chosen, run, None
        self._claimed.clear()
        self._fates.clear()
        self.unreadable = found
        self._unreadable, self._unreadable_seen = set(found), set()
        if found:
            warn_unreadable(self.path, chosen, found)
        return run

    def finish(self) -> None:
        """Write what is pending, end the run and release the store for the next sender."""
        if self.run_id is None:
            return
        if self._later is not None:
            self._later.cancel()
            self._later = None
        self._commit()
        if self._settles:
            logger.error(
                "%s: %d outcome(s) could not be recorded; those messages stay in doubt (a "
                "resume reports them unknown and never resends them)",
                self.path,
                len(self._settles),
            )
            self._settles.clear()
        with contextlib.suppress(JournalError), self._writing():
            self._open().execute(
                "UPDATE runs SET finished_at = ? WHERE id = ?", (self._clock(), self.run_id)
            )
        self.run_id = None
        self.suppressions.unload()
        self._lock.release()

    async def close(self) -> None:
        """Record the webhooks queued, finish the run, if one is going, and close the database."""
        self._webhooks.flush()
        self.finish()
        self._checkpoints.stop()  # its connection first: the last one to close removes the log
        db, self._db = self._db, None
        if db is not None:
            db.close()

    # -- the Ledger protocol ----------------------------------------------------------------

    async def claim(self, key: str) -> str | None:
        """Claim ``key`` for one send attempt (see :class:`Ledger`); starts a run if needed."""
        return await self.claim_message(key)

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of a claimed key (written with the next commit)."""
        if state not in OUTCOMES:
            raise ValidationError("state", f"must be one of {sorted(OUTCOMES)}, got {state!r}")
        row = self._claimed.pop(key, None)
        if row is not None:
            failure = None if code is None else (code, None, None)
            self._settle(settle_record(state, message_id, 0, self._clock(), row, key, failure))

    # -- what the bulk sender calls ---------------------------------------------------------

    async def claim_message(
        self, key: str, *, to: str | None = None, channel: str | None = None
    ) -> str | None:
        """Claim ``key`` for a send to ``to`` through ``channel``; returns once it is committed.

        Returns:
            None to go ahead; else why not (see :meth:`confirm`).

        Raises:
            JournalError: the claim could not be written (then the message must not be sent).
        """
        found = self.claim_nowait(key, to=to, channel=channel)
        if found is not None:
            return found
        self._commit_soon()
        try:
            # The commit was scheduled before this task's wake-up, so it runs first: the claims
            # of every worker in this loop iteration share it. A bare yield costs less than a
            # future.
            await asyncio.sleep(0)
            while self._fates.get(key) is _PENDING:
                self._commit_soon()
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.release(key)
            raise
        return self.confirm(key)

    def claim_nowait(
        self, key: str, *, to: str | None = None, channel: str | None = None
    ) -> str | None:
        """Queue the claim of ``key`` for the next commit; :meth:`confirm` it before sending.

        Returns:
            None when queued; ``"duplicate"`` or ``"unreadable"`` when it is known already.

        Raises:
            JournalError: the store cannot take claims (a write failed).
        """
        if self.run_id is None:
            self.begin()
        if self._broken is not None:
            raise JournalError(str(self._broken))
        if key in self._fates:
            return "duplicate"  # claimed a moment ago, not confirmed yet
        if self._unreadable and key in self._unreadable:
            return self._unreadable_claim(key)
        self._claims.append((self.campaign, key, self.run_id, channel, to, self._clock()))
        self._fates[key] = _PENDING
        if self._later is None:
            self._later = asyncio.get_running_loop().call_later(FLUSH, self._commit_late)
        return None

    def confirm(self, key: str) -> str | None:
        """Whether the queued claim of ``key`` may be sent, committing it now if it is not yet.

        Returns:
            None to go ahead; ``"sent"``; ``"duplicate"`` (claimed earlier in this run);
            ``"attempting"``, ``"unknown"`` or ``"unreadable"`` (in doubt).

        Raises:
            JournalError: it could not be written: the message must not be sent.
        """
        if self._fates.get(key) is _PENDING:
            self._commit()  # the group commit of every claim queued since the last one
        fate = self._fates.pop(key, _PENDING)
        if fate is _PENDING:  # never claimed (or withdrawn): never to be sent
            raise JournalError(f"no claim of {key!r} to confirm")
        if isinstance(fate, JournalError):
            raise JournalError(str(fate))
        found: str | None = fate  # what is left: a verdict (no cast call on the hot path)
        return found

    def release(self, key: str) -> None:
        """Withdraw the claim of ``key``, never sent: dropped if it is still queued, else
        settled ``cancelled`` with the next commit."""
        if self._fates.pop(key, None) is _PENDING:
            self._claims = [claim for claim in self._claims if claim[1] != key]
            return
        row = self._claimed.pop(key, None)
        if row is not None:
            self._settle(settle_record("cancelled", None, 0, self._clock(), row, key))

    async def record_outcome(self, outcome: Outcome) -> None:
        """Settle the claim of ``outcome.key`` with the outcome (written with the next commit)."""
        row = self._claimed.pop(outcome.key, None)  # type: ignore[arg-type]  # None: no row
        if row is not None:  # else not claimed here
            self._settle(outcome_record(outcome, row, self._clock()))

    # -- delivery truth (status webhooks, _store_delivery.py): no send lock needed ---------

    def record_webhook(self, notification: Notification) -> asyncio.Future[Notification]:
        """Record a webhook's new statuses and messages; see :class:`WebhookStore`.

        Raises:
            JournalError: it could not be written (then nothing of it was recorded).
        """
        return self._webhooks.record(notification)

    def callback_for(self, key: str) -> str | None:
        """The callback tag a send of ``key`` carries: it names the key's row, claimed in this
        run (None otherwise), so a status webhook that echoes it finds the row even if the
        send's answer, and with it the message id, was lost."""
        row = self._claimed.get(key)
        return None if row is None else f"{self._prefix}{row}"

    def last_inbound(self, number: str) -> float | None:
        """The last time (Unix) ``number`` wrote to the business, as the store's webhooks
        showed it; None if it never did. Its 24-hour window is open until 24 h after."""
        return window_of(self._open(), number)

    def in_window(self, number: str) -> bool:
        """Whether ``number`` wrote to the business in the last 24 hours (a free-form message
        may reach them)."""
        last = window_of(self._open(), number)
        return last is not None and self._clock() - last < WINDOW

    def campaigns(self) -> list[str]:
        """The campaigns recorded in the store, oldest first."""
        return campaigns(self._open())

    async def report(
        self, campaign: str | None = None, *, horizon: float = 3600.0
    ) -> DeliveryReport:
        """The :class:`DeliveryReport` of ``campaign`` (default: the store's last).

        Args:
            campaign: the campaign to report.
            horizon: seconds after which a send with no delivery status is ``unconfirmed``.

        Raises:
            JournalError: the store has no campaign yet, or it cannot be read.
        """
        chosen = self._chosen(campaign)
        self._commit()  # what the sender has queued counts
        return await report(self.path, chosen, horizon, self._clock(), self._prefix)

    def in_doubt(self, campaign: str | None = None) -> Iterator[dict[str, Any]]:
        """The messages of ``campaign`` (default: the store's last) still in doubt (see
        :func:`~dialog360_async._store_report.in_doubt`); none without a campaign."""
        chosen = self._chosen(campaign)
        self._commit()
        return iter(()) if chosen is None else in_doubt(self._open(), chosen, self._prefix)

    def _chosen(self, campaign: str | None) -> str | None:
        if campaign is not None:
            return check_name(campaign, "campaign")
        return self.campaign or self.last_campaign()

    # -- writing ----------------------------------------------------------------------------

    def _unreadable_claim(self, key: str) -> str:
        if key in self._unreadable_seen:
            return "duplicate"
        self._unreadable_seen.add(key)
        return "unreadable"

    def _settle(self, record: tuple[Any, ...]) -> None:
        self._settles.append(record)
        if self._later is None:
            self._later = asyncio.get_running_loop().call_later(FLUSH, self._commit_late)

    def _commit_late(self) -> None:
        self._later = None
        self._commit()

    def _commit_soon(self) -> None:
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        """Write every queued claim and settle in one transaction."""
        self._checkpoints.poke()  # this commit included: the thread waits ``interval`` first
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        claims, self._claims = self._claims, []
        settles, self._settles = self._settles, []
        if not (claims or settles):
            return
        db = self._db
        try:
            if db is None:
                raise sqlite3.ProgrammingError("the store is closed")
            db.execute("BEGIN IMMEDIATE")
            fates = insert_claims(db, claims, self._claimed) if claims else []
            if settles:
                write_settles(db, settles)
                adopt_settled(db, settles, self._clock() - DEDUP_TTL)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._settles[:0] = settles  # tried again when the run finishes
            fates = [self._fail(exc)] * len(claims)  # gone with the rollback: none may be sent
        for claim, fate in zip(claims, fates, strict=True):
            key = claim[1]
            if fate == "unreadable":
                logger.warning("%s: unreadable record for key %r: in doubt", self.path, key)
                self.unreadable.append(key)
            if key in self._fates:  # else withdrawn meanwhile
                self._fates[key] = fate

    def _fail(self, exc: sqlite3.Error) -> JournalError:
        """A write failed: roll back, and refuse every claim from now on."""
        error = JournalError(f"could not write to the broadcast store {self.path}: {exc}")
        if self._broken is None:
            self._broken = error
            logger.error("%s", error)
        db = self._db
        if db is not None and db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        return error

    @contextlib.contextmanager
    def _writing(self) -> Any:
        """One synchronous transaction of its own; a failure is a JournalError."""
        db = self._open()
        self._commit()  # what is queued first
        try:
            db.execute("BEGIN IMMEDIATE")
            yield
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(exc) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalError(f"the broadcast store {self.path} is closed")
        return self._db

    def last_campaign(self) -> str | None:
        """The campaign of the store's last run (what a run without ``campaign=`` resumes)."""
        row = self._open().execute("SELECT campaign FROM runs ORDER BY id DESC LIMIT 1")
        found = row.fetchone()
        return None if found is None else text(found[0])
