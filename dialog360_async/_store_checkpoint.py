"""WAL checkpoints of a broadcast store, in a thread of their own.

SQLite checkpoints a WAL database inside the commit that takes the log past ``wal_autocheckpoint``
pages, on the committing thread: here the event loop's. Copying the log back into the database and
syncing both files stalled the loop 25-47 ms at a time (the journal and webhook benchmarks), while
answers and webhooks waited. A PASSIVE checkpoint from another connection does the same work
without blocking writers or readers (https://www.sqlite.org/wal.html#checkpointing), and sqlite3
lets go of the GIL while it runs, so it runs here: ``interval`` after a commit asked for one, for
every commit made meanwhile. The loop's connection keeps a distant automatic checkpoint
(``BACKSTOP_PAGES``) for a thread that falls behind.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Final

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

BACKSTOP_PAGES: Final = 20_000  # the loop checkpoints itself past this many WAL pages (80 MB)
INTERVAL: Final = 0.25  # seconds between two checkpoints at most: a sync of both files each


class Checkpointer:
    """Checkpoints ``path``'s WAL from a daemon thread when :meth:`poke` asks for one."""

    def __init__(self, path: Path, *, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """Checkpoints done (that copied frames or found none to copy)."""

    def poke(self) -> None:
        """Ask for a checkpoint ``interval`` from now (cheap: call it before every commit)."""
        if self._wake.is_set():
            return
        if self._thread is None:
            if self._stopped.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"checkpoint {self._path.name}", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """End the thread (after the checkpoint it may be running) and close its connection."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return  # the loop's backstop checkpoints instead
        with contextlib.closing(db):
            # Checked each round: a stop() between the interval's wait and the clear below has
            # its wake-up cleared, and the thread would wait for another forever.
            while not self._stopped.is_set():
                self._wake.wait()
                # The commit that poked, and those of the next interval, share the checkpoint.
                if self._stopped.wait(self._interval):
                    return
                self._wake.clear()
                # Busy (another checkpoint, in this process or another) or failed (a full
                # disk): the log keeps every frame, and the next poke tries again.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
