"""Delivery truth in the broadcast store: status webhooks merged into the message rows, the
dedup keys and orphan statuses (the reports read back: _store_report.py).

Merge (design.md "The broadcast store"; ../shared/docs/webhooks-and-statuses.md §7.5, §7.6): a
status names its row by wamid, or else by callback tag. ``delivery`` only climbs the rank
``sent < delivered < read < played`` (never ordered by timestamp, so ``read`` also counts as
delivered); the first ``failed`` sets ``failed_at`` and its code and title, and nothing clears
them. A status no row names yet is an orphan, applied when a row learns that wamid: the sender
settles it, or a status with its callback tag names it. Both sides write in transactions, so
whichever comes second sees the first.

A status never rewrites the send's outcome: a row in doubt (``attempting`` with no result, or
``unknown``) that a status names keeps it, and counts as *unknown settled*; a resume skips it as
sent (_store_file.py ``_reclaim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs

from ._journal import JournalError
from ._store_file import row_of_tag
from .errors import ValidationError
from .webhooks._dedup import DEDUP_TTL
from .webhooks._models import DedupKey, Notification, StatusUpdate

__all__ = ["WebhookLog", "adopt_settled"]

RANKS: Final = {"sent": 1, "delivered": 2, "read": 3, "played": 4}
_RANK: Final = (
    "CASE delivery WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 "
    "WHEN 'played' THEN 4 ELSE 0 END"
)
GROUP_ITERATIONS: Final = 8  # loop iterations a commit waits for more webhooks, at most
GROUP_SIZE: Final = 256  # webhooks that end the wait
SWEPT: Final = 10_000  # dedup keys looked at (and orphans deleted) per transaction at most

# A key seen more than the ttl ago is new again: its row is taken over.
_SEE: Final = (
    "INSERT INTO webhook_seen (id, status, seen_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (id, status) DO UPDATE SET seen_at = ?3 WHERE seen_at <= ?4"
)
_BY_ROW: Final = "SELECT id, wamid FROM messages WHERE id = ?"
# Parameters: rank (0 for failed), status, its time, failed?, code, title, then the row id
# (_MERGE; the common case by wamid is _RAISE_WAMID or _FAIL_WAMID below).
_SET: Final = (
    f"delivery = CASE WHEN ?1 > {_RANK} THEN ?2 ELSE delivery END, "
    f"delivery_at = CASE WHEN ?1 > {_RANK} THEN ?3 ELSE delivery_at END, "
    "error_code = CASE WHEN ?4 AND failed_at IS NULL THEN ?5 ELSE error_code END, "
    "error_title = CASE WHEN ?4 AND failed_at IS NULL THEN ?6 ELSE error_title END, "
    "failed_at = CASE WHEN ?4 AND failed_at IS NULL THEN ?3 ELSE failed_at END"
)
_MERGE: Final = f"UPDATE messages SET {_SET} WHERE id = ?7"
# _SET split by kind for the common case, one statement that finds the row by wamid and merges:
# a ranked status leaves the failure columns alone and a failed one (rank 0) the delivery, and
# each statement with fewer CASEs costs about 1 us less a status (webhooks benchmark).
_RAISE_WAMID: Final = (
    f"UPDATE messages SET delivery = CASE WHEN ?1 > {_RANK} THEN ?2 ELSE delivery END, "
    f"delivery_at = CASE WHEN ?1 > {_RANK} THEN ?3 ELSE delivery_at END WHERE wamid = ?4"
)
_FAIL_WAMID: Final = (
    "UPDATE messages SET error_code = CASE WHEN failed_at IS NULL THEN ?1 ELSE error_code END, "
    "error_title = CASE WHEN failed_at IS NULL THEN ?2 ELSE error_title END, "
    "failed_at = coalesce(failed_at, ?3) WHERE wamid = ?4"
)
_LEARN: Final = "UPDATE messages SET wamid = ? WHERE id = ? AND wamid IS NULL"
_ORPHAN: Final = (
    "INSERT INTO orphans (wamid, status, callback, error_code, error_title, at, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ORPHANS_OF: Final = (
    "SELECT status, error_code, error_title, at FROM orphans WHERE wamid = ? AND received_at > ?"
)


class WebhookLog:
    """The store's ``record_webhook``: the calls of one loop iteration share one transaction.

    Args:
        path: the store's file (for messages).
        connection: the store's connection (raises JournalError once it is closed).
        before: writes what the store's sender has queued (its settles carry wamids).
        clock: Unix time.
        prefix: the store's callback tags start with it (the row id follows).
        ttl: seconds a dedup key and an orphan are kept.
    """

    def __init__(
        self,
        path: Path,
        connection: Callable[[], sqlite3.Connection],
        before: Callable[[], None],
        clock: Callable[[], float],
        prefix: str,
        ttl: float = DEDUP_TTL,
    ) -> None:
        self._prefix = prefix
        self._path = path
        self._connection = connection
        self._before = before
        self._clock = clock
        self._ttl = ttl
        self._queue: list[tuple[Notification, asyncio.Future[Notification]]] = []
        self._handle: asyncio.Handle | None = None
        self._next_sweep = float("-inf")
        self._swept: DedupKey | None = None  # the last dedup key the last sweep looked at
        self._waited = 0  # loop iterations the next commit has waited
        self._queued = 0  # webhooks queued when it last looked
        # The store's reach state (suppression list, windows) learns from the fresh part of
        # each webhook in the same transaction (_store_reach.py).
        self.after: Callable[[sqlite3.Connection, list[Notification], float], None] | None = None

    def record(self, notification: Notification) -> asyncio.Future[Notification]:
        """Record ``notification`` with the next commit; the future of the part of it not seen
        before (a future, not a coroutine: the receiver awaits it for every webhook)."""
        if not isinstance(notification, Notification):
            raise ValidationError("notification", f"must be a Notification, got {notification!r}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Notification] = loop.create_future()
        self._queue.append((notification, future))
        if self._handle is None:
            self._waited = 0
            self._queued = 0
            self._handle = loop.call_soon(self._flush_next)
        return future  # cancelled before the commit: dropped from it, recorded nothing

    def _flush_next(self) -> None:
        # The POSTs that arrive meanwhile share the commit (a commit is the costly part): wait
        # while each loop iteration brings more, then one more iteration, as when idle.
        queued = len(self._queue)
        self._waited += 1
        loop = asyncio.get_running_loop()
        if queued > self._queued and self._waited < GROUP_ITERATIONS and queued < GROUP_SIZE:
            self._queued = queued
            self._handle = loop.call_soon(self._flush_next)
        else:
            self._handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Record every queued webhook in one transaction (nothing of them if it fails)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        batch = [(n, future) for n, future in self._queue if not future.done()]
        self._queue = []
        if not batch:
            return
        db: sqlite3.Connection | None = None
        try:
            db = self._connection()
            self._before()
            now = self._clock()
            db.execute("BEGIN IMMEDIATE")
            cursor, horizon, prefix = db.cursor(), now - self._ttl, self._prefix
            results = [_record(cursor, n, now, horizon, prefix) for n, _ in batch]
            if self.after is not None:
                self.after(db, results, now)
            if now >= self._next_sweep:
                self._swept, more = _sweep(db, now - self._ttl, self._swept)
                self._next_sweep = now + (1.0 if more else 60.0)
            db.execute("COMMIT")
        except Exception as exc:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            for _, future in batch:
                future.set_exception(
                    JournalError(f"could not record webhooks in {self._path}: {exc}")
                    if isinstance(exc, sqlite3.Error)
                    else exc
                )
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


def _record(
    cursor: sqlite3.Cursor, n: Notification, now: float, horizon: float, prefix: str
) -> Notification:
    # One pass, each status merged right after its key is found new: no statement reads
    # webhook_seen but _SEE, so this equals marking them all first. The batch's one cursor and
    # its rowcount: a cursor per statement and total_changes cost more than the statements.
    execute = cursor.execute
    statuses = []
    for status in n.statuses:
        if execute(_SEE, (status.message_id, status.status, now, horizon)).rowcount:
            statuses.append(status)
            _merge(cursor, status, now, horizon, prefix)
    messages = []
    for message in n.messages:
        if execute(_SEE, (message.message_id, "", now, horizon)).rowcount:
            messages.append(message)
    if len(statuses) == len(n.statuses) and len(messages) == len(n.messages):
        return n
    return attrs.evolve(n, statuses=tuple(statuses), messages=tuple(messages))


def _merge(
    db: sqlite3.Cursor, status: StatusUpdate, now: float, horizon: float, prefix: str
) -> None:
    value = status.status
    rank = RANKS.get(value, 0)
    at = now if status.timestamp is None else float(status.timestamp)
    wamid = status.message_id
    if rank:
        code = title = None
        if db.execute(_RAISE_WAMID, (rank, value, at, wamid)).rowcount:
            return  # a row with that wamid
    elif value == "failed":
        error = status.errors[0] if status.errors else None
        code = error.code if error is not None else None
        title = error.message[:300] if error is not None and error.message else None
        if db.execute(_FAIL_WAMID, (code, title, at, wamid)).rowcount:
            return
    else:
        return  # deleted, warning, newer values: deduplicated, no delivery fact
    tag = status.callback_data
    found = None
    if (row := row_of_tag(tag, prefix)) is not None:
        found = db.execute(_BY_ROW, (row,)).fetchone()
    if found is None:
        db.execute(_ORPHAN, (wamid, value, tag, code, title, at, now))
        return
    row, known = found
    db.execute(_MERGE, (rank, value, at, value == "failed", code, title, row))
    if known is None:  # the row learns its wamid from the tag: the orphans of it are its own
        db.execute(_LEARN, (wamid, row))
        _adopt(db, row, wamid, horizon)


def _adopt(db: sqlite3.Connection | sqlite3.Cursor, row: int, wamid: str, horizon: float) -> None:
    """Apply the orphan statuses of ``wamid`` to ``row``, which now has that wamid."""
    orphans = db.execute(_ORPHANS_OF, (wamid, horizon)).fetchall()
    for status, code, title, at in orphans:
        failed = status == "failed"
        db.execute(_MERGE, (RANKS.get(status, 0), status, at, failed, code, title, row))
    if orphans:
        db.execute("DELETE FROM orphans WHERE wamid = ?", (wamid,))


def adopt_settled(db: sqlite3.Connection, settles: list[tuple[Any, ...]], horizon: float) -> None:
    """Match orphans to the wamids of settle records (_store_file.py) just written, in their
    transaction."""
    if db.execute("SELECT EXISTS (SELECT 1 FROM orphans)").fetchone()[0]:
        for record in settles:
            if record[1] is not None:
                _adopt(db, record[4], record[1], horizon)


def _sweep(
    db: sqlite3.Connection, horizon: float, after: DedupKey | None
) -> tuple[DedupKey | None, bool]:
    """Delete the expired keys among the SWEPT that follow ``after`` (from the first: None) and
    a bounded batch of expired orphans. Returns where the next sweep starts and whether more
    are left (the walk has not wrapped around, or orphans remain)."""
    # Keys are walked in their order, not found through an index on seen_at: that index cost
    # every status a second b-tree insert (about 1 % of the receiver, webhooks benchmark).
    lower, start = ("(id, status) > (?, ?)", after) if after is not None else ("1", ())
    bound = db.execute(
        f"SELECT id, status FROM webhook_seen WHERE {lower} ORDER BY id, status LIMIT 1 OFFSET ?",
        (*start, SWEPT - 1),
    ).fetchone()
    upper, end = ("(id, status) <= (?, ?)", bound) if bound is not None else ("1", ())
    db.execute(
        f"DELETE FROM webhook_seen WHERE {lower} AND {upper} AND seen_at <= ?",
        (*start, *end, horizon),
    )
    orphans = db.execute(
        "DELETE FROM orphans WHERE id IN (SELECT id FROM orphans WHERE received_at <= ? LIMIT ?)",
        (horizon, SWEPT),
    ).rowcount
    return (None if bound is None else tuple(bound)), bound is not None or orphans >= SWEPT
