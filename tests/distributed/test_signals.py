"""A worker's broker delivers taskiq's signal handlers through its loop, so that a signal wakes
the standard asyncio loop too (uvloop wakes by itself) while it sleeps in ``select()``."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from dialog360_async.distributed import make_broker

from ._harness import RedisServer


@pytest.fixture
def sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_a_signal_reaches_taskiqs_shutdown_event_while_the_loop_sleeps(
    shared_redis: RedisServer, sigterm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D360_CHANNELS", "shop=shop-s3cr3t-key-0123456789")
    assert "uvloop" not in type(asyncio.get_running_loop()).__module__  # the loop that slept
    shutdown = asyncio.Event()

    def handler(signum: int, frame: FrameType | None) -> None:  # what taskiq's worker does
        shutdown.set()

    handler.__module__ = "taskiq.cli.worker.run"
    signal.signal(signal.SIGTERM, handler)
    sigint = signal.getsignal(signal.SIGINT)
    broker = make_broker(shared_redis.url, queue="signals")
    broker.is_worker_process = True
    await broker.startup()
    try:
        assert signal.getsignal(signal.SIGINT) is sigint  # not taskiq's: left alone
        # From another thread, once the loop waits in select() with nothing else to do.
        sender = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        sender.start()
        started = time.monotonic()
        await asyncio.wait_for(shutdown.wait(), 10)
        took = time.monotonic() - started
        sender.join()
    finally:
        await broker.shutdown()
    assert took < 0.2 + 1.0  # unwoken, the loop slept until the 10 s timeout
    assert signal.getsignal(signal.SIGTERM) is handler  # taskiq's handler is back
