"""Reach in the broadcast store: the suppression list, the customer-service windows, and the
campaign policy each campaign was sent with (design.md "Reach beyond the 24-hour window").

A failed delivery (a ``failed`` status webhook, or a send refused with a code) puts its
recipient on the suppression list by the rules of the policy its campaign was sent with, kept
in the store so that a receiver in another process applies them too. Each failed row is looked
at once (``policed``); a partial index keeps the rows not looked at yet at hand. Inbound
messages open the sender's window (the last time they wrote) and end the suppressions that
lift on a reply; a failure with a window code (131047) closes it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from ._policy import CampaignPolicy, Scope, Suppression, wa_id
from ._store_file import text
from ._validation import recipient
from .errors import ValidationError
from .webhooks._models import Notification

__all__ = [
    "WINDOW",
    "SuppressionList",
    "police",
    "put_suppression",
    "read_suppressions",
    "record_inbound",
    "save_policy",
    "window_of",
]

WINDOW: Final = 86_400.0  # seconds a user's customer-service window stays open

_UNPOLICED: Final = (
    "SELECT id, campaign, recipient, error_code, coalesce(failed_at, settled_at, claimed_at) "
    "FROM messages WHERE policed IS NULL AND error_code IS NOT NULL "
    "AND (failed_at IS NOT NULL OR outcome = 'failed')"
)
# A deferral gives way to any later entry; an entry for good only to one of a wider scope.
_PUT: Final = (
    "INSERT INTO suppressions (recipient, scope, code, reason, at, until, campaign, lifts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (recipient) DO UPDATE SET "
    "scope = excluded.scope, code = excluded.code, reason = excluded.reason, at = excluded.at, "
    "until = excluded.until, campaign = excluded.campaign, lifts = excluded.lifts "
    "WHERE suppressions.until IS NOT NULL OR (excluded.until IS NULL "
    "AND suppressions.scope = 'marketing' AND excluded.scope = 'all')"
)
_OPEN: Final = (
    "INSERT INTO windows (recipient, last_inbound) VALUES (?, ?) ON CONFLICT (recipient) "
    "DO UPDATE SET last_inbound = max(last_inbound, excluded.last_inbound)"
)
_FIELDS: Final = "recipient, scope, code, reason, at, until, campaign, lifts"


def save_policy(db: sqlite3.Connection, campaign: str, policy: CampaignPolicy) -> None:
    """Keep the rules ``campaign`` is sent with (inside the caller's transaction)."""
    db.execute(
        "INSERT INTO policies VALUES (?, ?) ON CONFLICT (campaign) DO UPDATE SET rules = "
        "excluded.rules",
        (campaign, json.dumps(policy.record())),
    )


@functools.lru_cache(maxsize=64)
def _policy_of(rules: object) -> CampaignPolicy:
    # Policed on every batch of webhooks with a failure: decode and check each rules text once.
    try:
        record = json.loads(rules) if isinstance(rules, str | bytes) else None
    except ValueError:
        record = None
    return CampaignPolicy.from_record(record)


def _policies(db: sqlite3.Connection, campaigns: Iterable[str]) -> dict[str, CampaignPolicy]:
    found: dict[str, CampaignPolicy] = {}
    for campaign in set(campaigns):
        row = db.execute("SELECT rules FROM policies WHERE campaign = ?", (campaign,)).fetchone()
        found[campaign] = _policy_of(None if row is None else row[0])
    return found


def police(db: sqlite3.Connection, now: float) -> list[Suppression]:
    """Apply each campaign's policy to the failed rows not looked at yet (inside the caller's
    transaction); the entries it put on the list."""
    rows = db.execute(_UNPOLICED).fetchall()
    if not rows:
        return []
    policies = _policies(db, (text(row[1]) for row in rows))
    added: list[Suppression] = []
    for _, campaign, to, code, at in rows:
        policy = policies[text(campaign)]
        if not isinstance(to, str) or not isinstance(code, int):
            continue
        number = wa_id(to)
        if code in policy.window_codes:
            db.execute("DELETE FROM windows WHERE recipient = ?", (number,))
        entry = policy.entry(code)
        if entry is None:
            continue
        scope, seconds = entry
        when = float(at) if isinstance(at, int | float) else now
        suppression = Suppression(
            recipient=number,
            scope=scope,
            code=code,
            reason=f"failed with {code}",
            at=when,
            until=None if seconds is None else when + seconds,
            campaign=text(campaign),
            lifts=code in policy.lift_on_reply,
        )
        put_suppression(db, suppression)
        added.append(suppression)
    db.executemany("UPDATE messages SET policed = 1 WHERE id = ?", ((row[0],) for row in rows))
    return added


def put_suppression(db: sqlite3.Connection, entry: Suppression) -> None:
    """Add ``entry`` (a deferral never replaces an entry for good)."""
    db.execute(
        _PUT,
        (
            entry.recipient,
            entry.scope,
            entry.code,
            entry.reason,
            entry.at,
            entry.until,
            entry.campaign,
            int(entry.lifts),
        ),
    )


def read_suppressions(db: sqlite3.Connection, number: str | None = None) -> Iterator[Suppression]:
    """The entries of the list (or of one number, digits only), oldest first."""
    if number is None:
        rows = db.execute(f"SELECT {_FIELDS} FROM suppressions ORDER BY at, recipient")
    else:
        rows = db.execute(f"SELECT {_FIELDS} FROM suppressions WHERE recipient = ?", (number,))
    for found, scope, code, reason, at, until, campaign, lifts in rows.fetchall():
        yield Suppression(
            recipient=text(found),
            scope="marketing" if scope == "marketing" else "all",
            code=code if isinstance(code, int) else None,
            reason=text(reason),
            at=float(at) if isinstance(at, int | float) else 0.0,
            until=float(until) if isinstance(until, int | float) else None,
            campaign=None if campaign is None else text(campaign),
            lifts=bool(lifts),
        )


def record_inbound(
    db: sqlite3.Connection, notifications: list[Notification], now: float
) -> tuple[list[Suppression], list[str]]:
    """Open the windows of the users who wrote (the fresh inbound messages of a batch) and end
    their suppressions that lift on a reply; police the rows a fresh ``failed`` status reached.
    Returns the entries added and the numbers whose entries ended."""
    lifted: list[str] = []
    failed = False
    for notification in notifications:
        if not failed:  # a loop, not any(): this runs for every webhook of a batch
            for status in notification.statuses:
                if status.status == "failed":
                    failed = True
                    break
        for message in notification.messages:
            if message.wa_id is None:
                continue
            # A timestamp from the future would hold a window open: the receipt time caps it.
            at = now if message.timestamp is None else min(float(message.timestamp), now)
            db.execute(_OPEN, (message.wa_id, at))
            gone = db.execute(
                "DELETE FROM suppressions WHERE recipient = ? AND lifts = 1", (message.wa_id,)
            )
            if gone.rowcount:
                lifted.append(message.wa_id)
    return (police(db, now) if failed else []), lifted


def window_of(db: sqlite3.Connection, recipient: str) -> float | None:
    """The last time ``recipient`` wrote to the business, if the store saw it."""
    row = db.execute(
        "SELECT last_inbound FROM windows WHERE recipient = ?", (wa_id(recipient),)
    ).fetchone()
    return None if row is None or not isinstance(row[0], int | float) else float(row[0])


class SuppressionList:
    """A broadcast store's suppression list (``store.suppressions``): iterate it, ``get``,
    ``add`` and ``remove`` entries. A run loads it into memory, so its lookups cost no query;
    webhooks recorded by the same store keep that copy current."""

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        writing: Callable[[], contextlib.AbstractContextManager[Any]],
        clock: Callable[[], float],
    ) -> None:
        self._connection = connection
        self._writing = writing
        self._clock = clock
        self._mirror: dict[str, Suppression] | None = None

    def __iter__(self) -> Iterator[Suppression]:
        with self._writing():  # failures recorded since the last look count
            police(self._connection(), self._clock())
        return read_suppressions(self._connection())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<SuppressionList of {len(self)} entries>"

    def get(self, number: str) -> Suppression | None:
        """The entry of ``number`` (a phone number or wa_id), if it has one."""
        key = wa_id(recipient(number, "number"))
        return next(read_suppressions(self._connection(), key), None)

    def add(
        self,
        number: str,
        *,
        reason: str = "added by hand",
        code: int | None = None,
        scope: Scope = "all",
        until: float | None = None,
    ) -> Suppression:
        """Put ``number`` on the list (replacing an entry it has) and return the entry.

        Raises:
            ValidationError: an argument is not valid.
        """
        key = wa_id(recipient(number, "number"))
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("reason", f"must be a non-empty string, got {reason!r}")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValidationError("code", f"must be an error code or None, got {code!r}")
        if scope not in ("all", "marketing"):
            raise ValidationError("scope", f"must be 'all' or 'marketing', got {scope!r}")
        if until is not None and (
            isinstance(until, bool) or not isinstance(until, int | float) or until != until
        ):
            raise ValidationError("until", f"must be a Unix time or None, got {until!r}")
        entry = Suppression(
            recipient=key,
            scope=scope,
            code=code,
            reason=reason.strip()[:300],
            at=self._clock(),
            until=None if until is None else float(until),
        )
        with self._writing():
            db = self._connection()
            db.execute("DELETE FROM suppressions WHERE recipient = ?", (key,))
            put_suppression(db, entry)
        self._refresh([key])
        return entry

    def remove(self, number: str) -> bool:
        """Take ``number`` off the list; whether it was on it."""
        key = wa_id(recipient(number, "number"))
        with self._writing():
            gone = self._connection().execute(
                "DELETE FROM suppressions WHERE recipient = ?", (key,)
            )
        self._refresh([key])
        return bool(gone.rowcount)

    # -- what the store and the bulk sender call ---------------------------------------------

    def load(self) -> None:
        """Keep a copy in memory (a run's lookups)."""
        self._mirror = {e.recipient: e for e in read_suppressions(self._connection())}

    def unload(self) -> None:
        self._mirror = None

    def skips(self, to: str, marketing: bool) -> Suppression | None:
        """The entry that keeps a send to ``to`` from a campaign (``marketing`` or not) now."""
        mirror = self._mirror
        if mirror is None:
            found = next(read_suppressions(self._connection(), wa_id(to)), None)
        elif not mirror:
            return None
        else:
            found = mirror.get(wa_id(to))
        return found if found is not None and found.applies(marketing, self._clock()) else None

    def after_webhooks(
        self, db: sqlite3.Connection, notifications: list[Notification], now: float
    ) -> None:
        """The store's webhook hook: windows, lifted entries and the policy, in its
        transaction."""
        added, lifted = record_inbound(db, notifications, now)
        if self._mirror is not None and (added or lifted):
            self._refresh([entry.recipient for entry in added] + lifted, db)

    def _refresh(self, numbers: list[str], db: sqlite3.Connection | None = None) -> None:
        if self._mirror is None:
            return
        db = db or self._connection()
        for number in numbers:
            found = next(read_suppressions(db, number), None)
            if found is None:
                self._mirror.pop(number, None)
            else:
                self._mirror[number] = found
