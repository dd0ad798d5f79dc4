"""Fixtures of the distributed tests: each test gets its own real redis-server."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ._harness import RedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.distributed)


def _server(directory: Path, *, persistent: bool) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not installed: the distributed tests need a real one "
            "(apt-get install -y redis-server)",
            pytrace=False,
        )
    server = RedisServer(directory, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server that never writes to disk."""
    yield from _server(tmp_path, persistent=False)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server with an fsync-always append-only file: a restart keeps its data."""
    yield from _server(tmp_path, persistent=True)


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for a module's quick tests (property tests use distinct keys)."""
    yield from _server(tmp_path_factory.mktemp("redis"), persistent=False)


@pytest.fixture
async def redis(shared_redis: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """A client of the module's server, emptied, with the module's ``CAMPAIGN`` created."""
    client = Redis.from_url(shared_redis.url, decode_responses=True)
    await client.flushdb()
    await client.hset(f"d360:campaign:{request.module.CAMPAIGN}:meta", "created", "1")
    try:
        yield client
    finally:
        await client.aclose()
