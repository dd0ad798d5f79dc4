"""The broadcast store's file: its schema and statements, opening it (or refusing a file that is
no store), writing a batch of claims, and the lock that lets one sender at a time use it.

The lock is an flock on a sidecar ``<store>-lock`` file, not SQLite's exclusive locking mode, so
that other processes (a webhook receiver) can read and write the store while a broadcast runs;
it dies with its process. It is not taken on the database file itself: closing any descriptor
of that file drops the POSIX locks SQLite holds on it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._codes import error_code, failure_reason, failure_title
from ._journal import JournalError
from ._store_checkpoint import BACKSTOP_PAGES

if TYPE_CHECKING:
    from ._outcomes import Outcome

# Not POSIX (Windows): the package still imports; a store refuses to take its lock.
try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "OUTCOMES",
    "SCHEMA_VERSION",
    "START",
    "UNREADABLE",
    "SendLock",
    "row_of_tag",
    "tag_prefix",
    "connect",
    "prepare",
    "insert_claims",
    "outcome_record",
    "settle_record",
    "text",
    "warn_unreadable",
    "write_settles",
]

logger = logging.getLogger("dialog360_async")
SHOWN: Final = 10  # unreadable keys named in the warning

APPLICATION_ID: Final = 0x44333630  # "D360" in the database header: a store, not any SQLite file
SCHEMA_VERSION: Final = 4
BUSY_TIMEOUT: Final = 5.0  # seconds to wait while another process (a receiver) writes

# channel and recipient: what the row went through and to whom; state: attempting | settled;
# outcome: sent | failed | unknown | cancelled once settled (a status webhook never rewrites it);
# wamid: the message id (from the send's answer, or from a status that named the callback tag);
# callback: unused (tags name the row: see tag_prefix); delivery: the highest status webhook by
# rank (sent < delivered < read < played), delivery_at its time; failed_at: when the first
# ``failed`` status came (kept whatever comes later); error_code/error_title: the send's error,
# or that first failed status's; reason: why the send failed (a word of FailureCount.reason);
# run: the last run that took the key.
_SCHEMA: Final = (
    # Rows in claim order, the key in an index: a commit rewrites the last pages of the table,
    # and settles (addressed by row id) land on those same recent pages.
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        key TEXT NOT NULL,
        run INTEGER,
        channel TEXT,
        recipient TEXT,
        state TEXT NOT NULL,
        outcome TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        wamid TEXT,
        callback TEXT,
        delivery TEXT,
        error_code INTEGER,
        error_title TEXT,
        claimed_at REAL,
        settled_at REAL,
        delivery_at REAL
    )""",
    "CREATE UNIQUE INDEX messages_key ON messages (campaign, key)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, pid INTEGER, "
    "started_at REAL NOT NULL, finished_at REAL)",
)
# Schema 2, also the in-place upgrade of a schema 1 file: delivery truth from status webhooks.
# webhook_seen: the dedup keys, (wamid, status) or (inbound message id, ""); orphans: statuses
# for a wamid no row has yet, matched when it arrives (see _store_delivery.py).
_SCHEMA_2: Final = (
    "ALTER TABLE messages ADD COLUMN failed_at REAL",
    "ALTER TABLE messages ADD COLUMN reason TEXT",
    "CREATE INDEX IF NOT EXISTS messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL",
    # store_info "tag": this file's random part of the callback tags (see tag_prefix).
    "CREATE TABLE IF NOT EXISTS store_info (name TEXT PRIMARY KEY, value TEXT NOT NULL) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS webhook_seen (id TEXT NOT NULL, status TEXT NOT NULL, "
    "seen_at REAL NOT NULL, PRIMARY KEY (id, status)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS orphans (id INTEGER PRIMARY KEY, wamid TEXT NOT NULL, "
    "status TEXT NOT NULL, callback TEXT, error_code INTEGER, error_title TEXT, at REAL, "
    "received_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orphans_wamid ON orphans (wamid)",
    "CREATE INDEX IF NOT EXISTS orphans_received ON orphans (received_at)",
)

# Schema 3, also the in-place upgrade of a schema 2 file: reach (_store_reach.py). policed: the
# row's failure was looked at by its campaign's policy; suppressions: the list; windows: the
# last time each user wrote; policies: the rules each campaign was sent with.
_SCHEMA_3: Final = (
    "ALTER TABLE messages ADD COLUMN policed INTEGER",
    "CREATE INDEX IF NOT EXISTS messages_unpoliced ON messages (id) WHERE policed IS NULL "
    "AND error_code IS NOT NULL AND (failed_at IS NOT NULL OR outcome = 'failed')",
    "CREATE TABLE IF NOT EXISTS suppressions (recipient TEXT PRIMARY KEY, scope TEXT NOT NULL, "
    "code INTEGER, reason TEXT NOT NULL, at REAL NOT NULL, until REAL, campaign TEXT, "
    "lifts INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS windows (recipient TEXT PRIMARY KEY, last_inbound REAL NOT NULL) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS policies (campaign TEXT PRIMARY KEY, rules TEXT NOT NULL) "
    "WITHOUT ROWID",
)
# Schema 4: webhook_seen loses its index on seen_at, which cost every status a second b-tree
# insert; expired keys are found by walking the keys in order instead (_store_delivery.py).
_SCHEMA_4: Final = ("DROP INDEX IF EXISTS webhook_seen_at",)
_UPGRADES: Final = {1: _SCHEMA_2, 2: _SCHEMA_3, 3: _SCHEMA_4}  # from version n to n + 1


# The statements of the records (see _store.py).
OUTCOMES: Final = frozenset({"sent", "failed", "unknown", "cancelled"})
_CLAIM: Final = (
    "INSERT INTO messages (campaign, key, run, channel, recipient, state, claimed_at) "
    "VALUES {} ON CONFLICT (campaign, key) DO NOTHING"
)
_CLAIMED: Final = "(?, ?, ?, ?, ?, 'attempting', ?)"
CLAIM: Final = _CLAIM.format(_CLAIMED)
# Claims go CHUNK rows to a statement: executemany steps and resets its statement once a row.
# A broadcast with the journal (sends answered at once) spent 167k instructions a message this
# way, 176k one row to a statement, 85k with no journal (callgrind, 2026-12-04).
CHUNK: Final = 32
CLAIMS: Final = _CLAIM.format(", ".join([_CLAIMED] * CHUNK))
# matched: a status webhook names the row, so a row in doubt reached WhatsApp after all.
READ: Final = (
    "SELECT id, state, outcome, run, delivery IS NOT NULL OR failed_at IS NOT NULL "
    "FROM messages WHERE campaign = ? AND key = ?"
)
RECLAIM: Final = (
    "UPDATE messages SET state = 'attempting', outcome = NULL, run = ?, channel = ?, "
    "recipient = ?, claimed_at = ?, settled_at = NULL, policed = NULL WHERE id = ?"
)
SEEN: Final = "UPDATE messages SET run = ? WHERE id = ?"
START: Final = "INSERT INTO runs (campaign, pid, started_at) VALUES (?, ?, ?)"
# A status may have come first: it keeps the wamid it named and the failure it reported.
# Records: (outcome, wamid, attempts, settled_at, row, key[, code, title, reason]). A record of
# an outcome with no error has no last three: sqlite3 binds a None through its adapter lookup
# (about 0.7 us each), three of them for every message sent.
_SETTLE: Final = (
    "UPDATE messages SET state = 'settled', outcome = ?1, wamid = coalesce(?2, wamid), "
    "error_code = CASE WHEN failed_at IS NULL THEN {code} ELSE error_code END, "
    "error_title = CASE WHEN failed_at IS NULL THEN {title} ELSE error_title END, "
    "reason = {reason}, attempts = attempts + ?3, settled_at = ?4 "
    "WHERE id = ?5 AND key = ?6 AND state = 'attempting'"
)
SETTLE: Final = _SETTLE.format(code="?7", title="?8", reason="?9")
SETTLE_CLEAN: Final = _SETTLE.format(code="NULL", title="NULL", reason="NULL")
CLEAN: Final = 6  # the length of a record with no error
UNREADABLE: Final = (
    "SELECT key FROM messages WHERE campaign = ? AND NOT coalesce(typeof(key) = 'text' AND "
    "(state = 'attempting' OR (state = 'settled' AND outcome IN "
    "('sent', 'failed', 'unknown', 'cancelled'))), 0)"
)


def tag_prefix(db: sqlite3.Connection) -> str:
    """What every callback tag of this store starts with: ``d360:``, 8 random hex digits of
    this file, ``:``; the row id follows.

    A status that echoes a tag names its row by primary key (no index to keep on the send
    path), tags of two stores never collide, and a tag gives away nothing of the recipient.
    """
    found = db.execute("SELECT value FROM store_info WHERE name = 'tag'").fetchone()
    return f"d360:{text(found[0]) if found else '0'}:"


def row_of_tag(tag: str | None, prefix: str) -> int | None:
    """The row a callback tag of this store names, or None for any other text."""
    if tag is None or not tag.startswith(prefix):
        return None
    row = tag[len(prefix) :]
    return int(row) if row.isascii() and row.isdigit() and len(row) < 19 else None


def text(value: object) -> str:
    """A value read from a row as text (a key edited into a BLOB included)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def settle_record(
    outcome: str,
    wamid: str | None,
    attempts: int,
    at: float,
    row: int,
    key: str,
    failure: tuple[int | None, str | None, str | None] | None = None,
) -> tuple[Any, ...]:
    """A settle record (see _SETTLE); ``failure`` is ``(code, title, reason)``, None for an
    outcome with no error."""
    record = (outcome, wamid, attempts, at, row, key)
    return record if failure is None else (*record, *failure)


def outcome_record(outcome: Outcome, row: int, at: float) -> tuple[Any, ...]:
    """The settle record of ``outcome`` for the claim of its key in ``row`` (see _SETTLE)."""
    error, result = outcome.error, outcome.result
    wamid = None if result is None else result.message_id
    record = (outcome.status, wamid, outcome.attempts, at, row, outcome.key)
    if error is None:
        return record
    return (*record, error_code(error), failure_title(error), failure_reason(error))


def write_settles(db: sqlite3.Connection, settles: list[tuple[Any, ...]]) -> None:
    """Write settle records (inside a commit's transaction)."""
    clean = [record for record in settles if len(record) == CLEAN]
    if clean:
        db.executemany(SETTLE_CLEAN, clean)
    if len(clean) < len(settles):
        db.executemany(SETTLE, [record for record in settles if len(record) > CLEAN])


def warn_unreadable(path: Path, campaign: str, keys: list[str]) -> None:
    """Log the unreadable records a run found in its campaign."""
    shown = ", ".join(repr(key) for key in keys[:SHOWN])
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    logger.warning(
        "%s: %d unreadable record(s) in campaign %s, treated as in doubt (reported unknown, "
        "never resent): %s%s",
        path,
        len(keys),
        campaign,
        shown,
        more,
    )


def insert_claims(
    db: sqlite3.Connection, claims: list[tuple[Any, ...]], claimed: dict[str, int]
) -> list[Any]:
    """Write claims queued by a store (inside its commit's transaction); the fate of each (None:
    send it, or why not), and the row of each claim in ``claimed``."""
    before = db.total_changes
    whole = len(claims) - len(claims) % CHUNK
    for start in range(0, whole, CHUNK):
        db.execute(CLAIMS, list(itertools.chain.from_iterable(claims[start : start + CHUNK])))
    db.executemany(CLAIM, claims[whole:])
    inserted = db.total_changes - before
    # Rows get the next row ids in order: those written now are the last `inserted` ones.
    first = 0
    if inserted:
        first = db.execute("SELECT last_insert_rowid()").fetchone()[0] - inserted + 1
    if inserted == len(claims):  # a fresh run: no key was there before
        for row, claim in enumerate(claims, first):
            claimed[claim[1]] = row
        return [None] * inserted
    return [_reclaim(db, claim, first, claimed) for claim in claims]


def _reclaim(
    db: sqlite3.Connection, claim: tuple[Any, ...], first: int, claimed: dict[str, int]
) -> str | None:
    """The fate of a claim whose key may have been there: who had it decides. Rows from
    ``first`` (if not 0) were written by this commit."""
    campaign, key, run_id, channel, to, at = claim
    found = db.execute(READ, (campaign, key)).fetchone()
    row, state, outcome, run, matched = found if found is not None else (0, None, None, None, 0)
    if first and row >= first:
        claimed[key] = row  # written now
        return None
    if run == run_id:
        return "duplicate"
    if state == "settled" and outcome in ("failed", "cancelled"):
        db.execute(RECLAIM, (run_id, channel, to, at, row))
        claimed[key] = row
        return None
    db.execute(SEEN, (run_id, row))  # a repeat now is a duplicate
    if matched and (state == "attempting" or outcome == "unknown"):
        return "sent"  # in doubt, but a status webhook showed it reached WhatsApp
    if state == "attempting":
        return "attempting"
    if state == "settled" and outcome in OUTCOMES:
        return str(outcome)
    return "unreadable"


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` as a store, creating it if it is new or empty."""
    with contextlib.suppress(OSError):  # the records name recipients: owner-only, like -wal
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    error: JournalError
    try:
        db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        error = JournalError(f"cannot open the broadcast store {path}: {exc}")
    else:
        try:
            prepare(db, path)
        except sqlite3.DatabaseError as exc:
            db.close()
            error = JournalError(
                f"{path} is not a broadcast store ({exc}); a JSONL journal of an earlier version "
                "cannot be resumed: name a new file"
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB"
                else f"cannot open the broadcast store {path}: {exc}"
            )
        except BaseException:
            db.close()
            raise
        else:
            return db
    raise error


def prepare(db: sqlite3.Connection, path: Path) -> None:
    """Set the connection up, creating the schema of a new file or upgrading an older one."""
    db.execute("PRAGMA journal_mode = WAL")  # the first read: a file that is no database fails
    db.execute("PRAGMA synchronous = NORMAL")
    # A thread of the store checkpoints the log (_store_checkpoint.py); this is the backstop.
    db.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
    if not _current(db):
        db.execute("BEGIN IMMEDIATE")  # another process may be creating it at the same time
        try:
            if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise JournalError(f"{path} is a SQLite database but not a broadcast store")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute("PRAGMA user_version = 1")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < 1:  # a store is made version 1 in the transaction that marks it
                raise JournalError(f"{path} is a SQLite database but not a broadcast store")
            while version < SCHEMA_VERSION:
                for statement in _UPGRADES[version]:
                    db.execute(statement)
                version += 1
                if version == 2:
                    db.execute(
                        "INSERT OR IGNORE INTO store_info VALUES ('tag', ?)",
                        (secrets.token_hex(4),),
                    )
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(f"{path} was written by a newer version (schema {version})")


def _current(db: sqlite3.Connection) -> bool:
    """Whether the file is a store of this schema version or a newer one."""
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        return False
    return bool(db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION)


class SendLock:
    """An exclusive flock on ``<store>-lock``: one sender per store, released by its death."""

    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + "-lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, store: Path) -> None:
        if fcntl is None:  # pragma: no cover - not POSIX
            raise JournalError("a broadcast store needs POSIX file locks (fcntl.flock)")
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise JournalError(f"cannot lock {store}: {exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # A releaser unlinks the file: the lock counts only on the file still there.
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                by = f" (process {owner})" if owner.isdigit() else ""
                raise JournalError(
                    f"{store} is in use by another sender{by}; one sender per store at a time"
                ) from None
            except FileNotFoundError:
                pass
            except OSError as exc:
                os.close(fd)
                raise JournalError(f"cannot lock {store}: {exc}") from None
            os.close(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # unlink first, then unlock: see acquire
            os.close(fd)
