"""The delivery report and the messages in doubt, read back from a broadcast store.

Each message is in exactly one kind of :class:`DeliveryReport`; the kinds follow from the send's
outcome and the statuses merged into its row (_store_delivery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ._codes import code_reason, meaning
from ._journal import JournalError
from ._report import DeliveryReport, FailureCount
from ._store_file import BUSY_TIMEOUT, text
from .errors import ValidationError
from .webhooks._dedup import DEDUP_TTL

__all__ = ["build_report", "campaigns", "in_doubt", "report"]

# Each message in exactly one kind (DeliveryReport); an unreadable row is in doubt.
_KINDS: Final = """
WITH k AS (SELECT *, CASE
    WHEN NOT coalesce(typeof(key) = 'text', 0) THEN 'unknown'
    WHEN state = 'settled' AND outcome = 'sent' THEN 'accepted'
    WHEN (delivery IS NOT NULL OR failed_at IS NOT NULL)
        AND (state = 'attempting' OR (state = 'settled' AND outcome = 'unknown'))
        THEN 'unknown_settled'
    WHEN state = 'settled' AND outcome = 'failed' THEN 'rejected'
    WHEN state = 'settled' AND outcome = 'cancelled' THEN 'cancelled'
    WHEN state = 'attempting' THEN 'pending'
    ELSE 'unknown' END AS kind,
    coalesce(settled_at, claimed_at) AS sent_at
    FROM messages WHERE campaign = ?1),
s AS (SELECT *, kind IN ('accepted', 'unknown_settled') AS reached FROM k)
"""
_COUNTS: Final = (
    _KINDS
    + """SELECT count(*), total(kind = 'accepted'), total(kind = 'unknown_settled'),
    total(kind = 'unknown'), total(kind = 'rejected'), total(kind = 'cancelled'),
    total(kind = 'pending'), total(reached AND delivery IN ('delivered', 'read', 'played')),
    total(reached AND delivery IN ('read', 'played')), total(reached AND failed_at IS NOT NULL),
    total(reached AND failed_at IS NULL AND coalesce(delivery, 'sent') = 'sent'
        AND sent_at <= ?2)
    FROM s"""
)
_FAILURES: Final = (
    _KINDS
    + """SELECT 'failed', reason, error_code, min(error_title), count(*) FROM s
    WHERE kind = 'rejected' GROUP BY reason, error_code
    UNION ALL
    SELECT 'undelivered', NULL, error_code, min(error_title), count(*) FROM s
    WHERE reached AND failed_at IS NOT NULL GROUP BY error_code"""
)
# Orphans that may be this store's: untagged (a tag of its own always finds its row).
_ORPHAN_COUNT: Final = (
    "SELECT count(DISTINCT wamid) FROM orphans WHERE received_at > ? "
    "AND (callback IS NULL OR substr(callback, 1, length(?2)) = ?2)"
)
_IN_DOUBT: Final = """SELECT campaign, key, recipient, channel, state, outcome, attempts, wamid,
    ?2 || id, error_code, error_title, claimed_at, settled_at FROM messages
    WHERE campaign = ?1 AND (NOT coalesce(typeof(key) = 'text' AND (state = 'attempting'
        OR (state = 'settled' AND outcome IN ('sent', 'failed', 'unknown', 'cancelled'))), 0)
    OR ((state = 'attempting' OR outcome = 'unknown')
        AND delivery IS NULL AND failed_at IS NULL))
    ORDER BY claimed_at, id"""
_FIELDS: Final = ("campaign", "key", "recipient", "channel", "state", "outcome", "attempts")
_FIELDS_2: Final = ("wamid", "callback", "error_code", "error_title", "claimed_at", "settled_at")
_TIMES: Final = frozenset({"claimed_at", "settled_at"})


def campaigns(db: sqlite3.Connection) -> list[str]:
    """The campaigns of a store, oldest first."""
    found = db.execute("SELECT campaign FROM runs GROUP BY campaign ORDER BY min(id)")
    return [text(row[0]) for row in found]


async def report(
    path: Path, campaign: str | None, horizon: object, now: float, prefix: str
) -> DeliveryReport:
    """Check the arguments of ``BroadcastStore.report``, then build it in a thread."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | float) or not horizon >= 0:
        raise ValidationError("horizon", f"must be a number of seconds >= 0, got {horizon!r}")
    if campaign is None:
        raise JournalError(f"the broadcast store {path} has no campaign yet")
    return await asyncio.to_thread(build_report, path, campaign, float(horizon), now, prefix)


def build_report(
    path: Path, campaign: str, horizon: float, now: float, prefix: str, ttl: float = DEDUP_TTL
) -> DeliveryReport:
    """The delivery report of ``campaign``, read on a connection of its own (in a thread)."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        db.execute("PRAGMA query_only = ON")
        db.execute("BEGIN")  # one snapshot: the counts and the failures agree
        counts = [int(n) for n in db.execute(_COUNTS, (campaign, now - horizon)).fetchone()]
        groups = db.execute(_FAILURES, (campaign,)).fetchall()
        orphans = db.execute(_ORPHAN_COUNT, (now - ttl, prefix)).fetchone()[0]
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the broadcast store {path}: {exc}") from None
    finally:
        db.close()
    messages, accepted, settled, unknown, rejected, cancelled, pending = counts[:7]
    delivered, read, undelivered, unconfirmed = counts[7:]
    return DeliveryReport(
        campaign=campaign,
        messages=messages,
        accepted=accepted,
        unknown_settled=settled,
        unknown=unknown,
        rejected=rejected,
        cancelled=cancelled,
        pending=pending,
        sent=accepted + settled,
        delivered=delivered,
        read=read,
        undelivered=undelivered,
        unconfirmed=unconfirmed,
        failures=_failures(groups),
        orphans=orphans,
        horizon=horizon,
        generated_at=now,
    )


def _failures(groups: list[tuple[Any, ...]]) -> tuple[FailureCount, ...]:
    merged: dict[tuple[str, str, int | None], list[Any]] = {}
    for status, reason, code, title, count in groups:
        code = code if isinstance(code, int) else None
        fallback = "undelivered" if status == "undelivered" else "other"
        word = (reason if isinstance(reason, str) else None) or code_reason(code) or fallback
        entry = merged.setdefault((status, word, code), [meaning(code) or title or "", 0])
        entry[1] += count
    failures = [
        FailureCount(status=status, reason=reason, code=code, meaning=str(what), count=count)
        for (status, reason, code), (what, count) in merged.items()
    ]
    failures.sort(key=lambda f: (-f.count, f.status, f.reason, f.code or 0))
    return tuple(failures)


def in_doubt(db: sqlite3.Connection, campaign: str, prefix: str) -> Iterator[dict[str, Any]]:
    """The messages of ``campaign`` still in doubt, in claim order (see BroadcastStore)."""
    for row in db.execute(_IN_DOUBT, (campaign, prefix)).fetchall():
        record = dict(zip(_FIELDS + _FIELDS_2, row, strict=True))
        for name in ("campaign", "key"):
            record[name] = text(record[name])
        for name in _TIMES:
            record[name] = _iso(record[name])
        yield record


def _iso(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    with contextlib.suppress(OverflowError, OSError, ValueError):
        at = datetime.datetime.fromtimestamp(value, datetime.UTC)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None
