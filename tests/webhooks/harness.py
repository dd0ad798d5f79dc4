"""A receiver served on 127.0.0.1, callbacks that record what they got, a persistent store."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
from aiohttp.test_utils import TestClient, TestServer

from dialog360_async.webhooks import (
    DEDUP_TTL,
    InboundMessage,
    Notification,
    StatusUpdate,
    WebhookReceiver,
)

PATH = "/webhook"


@asynccontextmanager
async def serve(receiver: WebhookReceiver) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """``receiver.app()`` on a real loopback port; leaving it closes the receiver (drains)."""
    async with TestClient(TestServer(receiver.app(PATH), host="127.0.0.1")) as client:
        yield client


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Recorder:
    """Async callbacks appending what they are given."""

    def __init__(self) -> None:
        self.statuses: list[StatusUpdate] = []
        self.messages: list[InboundMessage] = []

    async def on_status(self, status: StatusUpdate) -> None:
        self.statuses.append(status)

    async def on_message(self, message: InboundMessage) -> None:
        self.messages.append(message)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [s.key for s in self.statuses] + [m.key for m in self.messages]


class SqliteStore:
    """A WebhookStore that survives restarts: the Protocol is all the receiver needs."""

    def __init__(self, path: Path, clock: float | None = None) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen "
            "(id TEXT, status TEXT, at REAL, PRIMARY KEY (id, status))"
        )
        self._now = clock
        self.calls = 0

    def close(self) -> None:
        self._db.close()

    async def record_webhook(self, notification: Notification) -> Notification:
        self.calls += 1
        now = time.time() if self._now is None else self._now
        with self._db:  # one transaction: all of the batch or nothing
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM seen WHERE at < ?", (now - DEDUP_TTL,))

            def new(key: tuple[str, str]) -> bool:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (*key, now)
                )
                return cursor.rowcount == 1

            statuses = tuple(s for s in notification.statuses if new(s.key))
            messages = tuple(m for m in notification.messages if new(m.key))
        return attrs.evolve(notification, statuses=statuses, messages=messages)
