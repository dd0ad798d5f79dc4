"""The bulk sender's journal: an append-only JSONL file that makes a broadcast resumable.

An ``attempting`` record is written (and flushed) before each send and its result after it, so
that after a crash a re-run knows three kinds of message: sent (skip it), never attempted or
failed (send it), and in doubt, ``attempting`` with no result (never resend it blindly: it may
have been delivered). Practice: ../shared/docs/reliability-notes.md §3 "Resumable journal".
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from . import _json

__all__ = ["Journal", "JournalEntry", "Ledger"]

State = Literal["attempting", "sent", "failed", "unknown", "cancelled"]


class Ledger(Protocol):
    """Where the bulk sender records what it sends, so a message is never sent twice.

    The JSONL :class:`Journal` is one; the distributed extra keeps one in Redis for many
    workers.
    """

    async def claim(self, key: str) -> str | None:
        """Reserve ``key`` for one send attempt.

        Returns:
            None to go ahead; ``"sent"`` if it was sent already (skip it); any other state if
            it is in doubt (report it ``unknown``, never resend it blindly).
        """
        ...

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of a claimed key; ``"cancelled"`` and ``"failed"`` free it."""
        ...

    async def close(self) -> None:
        """Flush and release."""
        ...


# Flush every record (a killed process loses nothing the OS has); fsync in batches, at most
# once per interval, because one fsync per message would cap a broadcast at the disk's sync
# rate (and a write() waits while the same file is being synced).
FSYNC_INTERVAL = 1.0


class JournalEntry:
    """The last known state of one message key."""

    __slots__ = ("message_id", "state")

    def __init__(self, state: State, message_id: str | None = None) -> None:
        self.state = state
        self.message_id = message_id


class Journal:
    """Append-only JSONL journal keyed by a stable message key.

    Args:
        path: the journal file; created if missing, appended to otherwise.
        fsync_interval: seconds between two fsyncs (records are flushed one by one anyway).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fsync_interval: float = FSYNC_INTERVAL
    ) -> None:
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        self.torn_lines = 0
        self.entries: dict[str, JournalEntry] = self._load()
        self._file = self.path.open("ab", buffering=0)
        self._synced_at = time.monotonic()
        self._sync_task: asyncio.Task[None] | None = None
        if self._file.tell() > 0 and not self._ends_with_newline():
            self._file.write(b"\n")  # seal a torn last line so the next record parses

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as reader:
            reader.seek(-1, os.SEEK_END)
            return reader.read(1) == b"\n"

    def _load(self) -> dict[str, JournalEntry]:
        entries: dict[str, JournalEntry] = {}
        if not self.path.exists():
            return entries
        with self.path.open("rb") as reader:
            for line in reader:
                try:
                    record = _json.loads(line)
                    key, state = record["key"], record["state"]
                except (ValueError, KeyError, TypeError):
                    self.torn_lines += 1  # a write cut short by a crash
                    continue
                if isinstance(key, str) and state in _STATES:
                    entries[key] = JournalEntry(state, record.get("id"))
        return entries

    async def claim(self, key: str) -> str | None:
        """Write ``attempting`` for ``key`` unless it was sent or is in doubt (see Ledger)."""
        entry = self.entries.get(key)
        if entry is not None and entry.state in ("sent", "attempting", "unknown"):
            return entry.state
        self.attempting(key)
        return None

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Write the result of ``key``."""
        self.result(key, state, message_id=message_id, code=code)

    def attempting(self, key: str) -> None:
        """Record that ``key`` is about to be sent."""
        self._write({"key": key, "state": "attempting"})

    def result(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of ``key``."""
        record: dict[str, Any] = {"key": key, "state": state}
        if message_id is not None:
            record["id"] = message_id
        if code is not None:
            record["code"] = code
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        record["t"] = round(time.time(), 3)
        self._file.write(_json.dumps(record) + b"\n")  # unbuffered: one write() per record
        self.entries[record["key"]] = JournalEntry(record["state"], record.get("id"))
        now = time.monotonic()
        if now - self._synced_at >= self.fsync_interval:
            self._synced_at = now
            self._fsync_soon()

    def _fsync_soon(self) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            return  # one in flight covers these records too, or the next batch will
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            os.fsync(self._file.fileno())
            return
        self._sync_task = loop.create_task(asyncio.to_thread(os.fsync, self._file.fileno()))

    async def close(self) -> None:
        """Sync and close the file."""
        if self._file.closed:
            return
        if self._sync_task is not None:
            await asyncio.gather(self._sync_task, return_exceptions=True)
        await asyncio.to_thread(os.fsync, self._file.fileno())
        self._file.close()


_STATES = frozenset({"attempting", "sent", "failed", "unknown", "cancelled"})
