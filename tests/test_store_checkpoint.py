"""The store's WAL is checkpointed by a thread of its own, never inside a commit on the loop: the
database file catches up while the store is open, the log stops growing, and closing leaves
neither the log nor the thread behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dialog360_async import BroadcastStore
from dialog360_async import _store as store_module
from dialog360_async._store_checkpoint import Checkpointer

DEADLINE = 10.0  # seconds a checkpoint may take to show, on a loaded machine


def checkpointed_rows(path: Path, folder: Path) -> int:
    """The rows the database file holds without its log: what checkpoints copied into it."""
    copy = folder / "copy.db"
    shutil.copyfile(path, copy)
    try:
        with contextlib.closing(sqlite3.connect(copy)) as db:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1  # copied halfway through a checkpoint: look again
    finally:
        for name in ("copy.db", "copy.db-wal", "copy.db-shm"):
            (folder / name).unlink(missing_ok=True)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "no checkpoint in time"
        await asyncio.sleep(0.02)


async def write(store: BroadcastStore, batch: int, size: int = 100) -> None:
    """One commit of ``size`` claims, then one of their settles."""
    keys = [f"+49176{batch:04d}{i:04d}:{'0' * 24}" for i in range(size)]
    assert await asyncio.gather(*(store.claim(key) for key in keys)) == [None] * size
    for i, key in enumerate(keys):
        await store.settle(key, "sent", message_id=f"wamid.{batch}-{i}-{'x' * 40}")


def log_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_the_database_file_catches_up_while_the_store_is_open(
    tmp_path: Path, snap: Path
) -> None:
    path = tmp_path / "b.db"
    async with BroadcastStore(path) as store:
        for batch in range(20):
            await write(store, batch)
        store.finish()  # the last settles committed
        # The loop's own checkpoint is 20,000 pages away: only the thread copies anything.
        # The counter goes up just after the checkpoint returns: it may trail the file.
        await eventually(
            lambda: (
                checkpointed_rows(path, tmp_path / "snap") == 2000
                and store._checkpoints.checkpoints >= 1
            )
        )


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    folder = tmp_path / "snap"
    folder.mkdir()
    return folder


async def test_the_log_stops_growing_under_steady_writes(
    tmp_path: Path, snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paced by the checkpoints themselves, not by the clock: on a loaded machine a thread may
    # miss its interval, and a bound on a race between the two would fail for that alone.
    async def steady(path: Path, interval: float) -> int:
        monkeypatch.setattr(
            store_module, "Checkpointer", lambda p: Checkpointer(p, interval=interval)
        )
        largest = 0
        async with BroadcastStore(path) as store:
            checkpoints = store._checkpoints
            for batch in range(24):
                done = checkpoints.checkpoints
                await write(store, batch)
                if interval < 1:
                    await eventually(lambda done=done: checkpoints.checkpoints > done)
                largest = max(largest, log_size(path))
        return largest

    checkpointed = await steady(tmp_path / "on.db", 0.02)
    unchecked = await steady(tmp_path / "off.db", 60)
    # Every frame written stays in a log nobody checkpoints; checkpoints let the log restart.
    assert unchecked > 3 * checkpointed > 0


async def test_closing_leaves_no_log_and_no_thread(tmp_path: Path, snap: Path) -> None:
    path = tmp_path / "b.db"
    async with BroadcastStore(path) as store:
        await write(store, 0)
        thread = store._checkpoints._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()
    assert not any(t.name.startswith("checkpoint ") for t in threading.enumerate())
    assert sorted(os.listdir(tmp_path)) == ["b.db", "snap"]


def test_a_checkpointer_that_cannot_open_the_file_stops_quietly(tmp_path: Path) -> None:
    checkpoints = Checkpointer(tmp_path, interval=0)  # a folder: no database opens there
    checkpoints.poke()
    thread = checkpoints._thread
    assert thread is not None
    thread.join(DEADLINE)
    assert not thread.is_alive() and checkpoints.checkpoints == 0
    checkpoints.poke()  # harmless
    checkpoints.stop()
    checkpoints.stop()
    checkpoints.poke()  # after stop: starts nothing
    assert checkpoints._thread is None


class _StopLandsBeforeClear(threading.Event):
    """The checkpointer's wake event, with ``stop()`` landing between the thread's interval
    wait and its ``clear()``: the interleaving that once left close() joining forever."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        super().__init__()
        self.checkpointer = checkpointer
        self.raced = False

    def clear(self) -> None:
        if not self.raced:
            self.raced = True
            self.checkpointer._stopped.set()  # what stop() does before it joins
            self.set()
        super().clear()


def test_a_stop_that_lands_just_before_the_wake_is_cleared_still_ends_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "race.db"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer(path, interval=0.0)
    wake = _StopLandsBeforeClear(checkpointer)
    checkpointer._wake = wake
    checkpointer.poke()
    thread = checkpointer._thread
    assert thread is not None
    thread.join(timeout=DEADLINE)
    assert wake.raced
    assert not thread.is_alive(), "the checkpoint thread missed the stop and waits forever"
    checkpointer.stop()  # joins at once
