"""SessionPool: one connector for many channels, cached clients, clean shutdown."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from dialog360_async import (
    Dialog360Client,
    Location,
    OnPremiseClient,
    RetryPolicy,
    SessionPool,
    TransportError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360

HQ = Location(latitude=1, longitude=2)


def test_pool_needs_no_event_loop() -> None:
    pool = SessionPool()
    client = pool.client("key-1")
    assert isinstance(client, Dialog360Client)
    assert pool.client("key-1") is client
    assert "key-1" not in repr(pool)


async def test_clients_cached_per_key_and_options() -> None:
    async with SessionPool() as pool:
        a = pool.client("key-1")
        assert pool.client("key-1") is a
        assert pool.client("key-2") is not a
        assert pool.client("key-1", retry=None) is not a
        assert isinstance(pool.on_premise_client("key-1"), OnPremiseClient)
        assert len(pool) == 4


async def test_many_channels_share_one_session() -> None:
    keys = [f"channel-key-{n}" for n in range(20)]
    async with FakeDialog360(throughput=None) as fake:
        async with SessionPool(limit=4) as pool:
            clients = [pool.client(k, base_url=fake.url) for k in keys]
            sent = await asyncio.gather(
                *(c.send_location(f"+1650555{n:04d}", HQ) for n, c in enumerate(clients))
            )
            sessions = {c._transport._open("GET /") for c in clients}
            assert len(sessions) == 1
            assert pool.on_premise_client(keys[0], base_url=fake.url) is not None
    assert len(sent) == 20
    assert len({r.channel for r in fake.requests}) == 20  # 20 channels on the fake
    assert fake.max_in_flight <= 4  # the shared connector's limit holds across channels


async def test_closing_the_pool_closes_everything() -> None:
    async with FakeDialog360(throughput=None) as fake:
        pool = SessionPool()
        client = pool.client("k", base_url=fake.url, retry=RetryPolicy(max_attempts=1))
        await client.send_location("+16505551234", HQ)
        session = client._transport._open("GET /")
        await pool.close()
        await pool.close()
        assert session.closed
        assert pool.closed
        with pytest.raises(TransportError, match="closed"):
            pool.client("k")
        with pytest.raises(TransportError, match="closed"):
            await client.send_location("+16505551234", HQ)


async def test_closing_a_pooled_client_keeps_the_pool_open() -> None:
    async with FakeDialog360(throughput=None) as fake, SessionPool() as pool:
        first = pool.client("a", base_url=fake.url)
        await first.close()
        with pytest.raises(TransportError, match="closed"):
            await first.send_location("+16505551234", HQ)  # closed means closed
        await pool.client("b", base_url=fake.url).send_location("+16505551234", HQ)
        again = pool.client("a", base_url=fake.url)
        assert again is not first  # the pool replaces a client that was closed
        await again.send_location("+16505551234", HQ)
    assert fake.sends["16505551234"] == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("limit", "x"),
        ("limit", -1),
        ("limit", 1.5),
        ("limit", True),
        ("limit_per_host", None),
        ("limit_per_host", -3),
        ("keepalive_timeout", 0),
        ("keepalive_timeout", float("inf")),
        ("keepalive_timeout", "30"),
        ("ttl_dns_cache", -1),
        ("ttl_dns_cache", "300"),
        ("timeout", 0),
        ("timeout", float("nan")),
        ("timeout", "30"),
        ("timeout", aiohttp.ClientTimeout(total=-1)),
    ],
)
def test_pool_options_validated(option: str, value: object) -> None:
    with pytest.raises(ValidationError, match=option):
        SessionPool(**{option: value})  # type: ignore[arg-type]


def test_pool_client_options_validated() -> None:
    pool = SessionPool()
    with pytest.raises(ValidationError, match="session"):
        pool.client("k", session=object())
    with pytest.raises(ValidationError, match="timeout"):
        pool.client("k", timeout=-1)
    with pytest.raises(ValidationError, match="options"):
        pool.client("k", base_url=["not", "hashable"])
    assert len(pool) == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", float("inf")),
        ("timeout", None),
        ("timeout", aiohttp.ClientTimeout(connect=0)),
        ("timeout", aiohttp.ClientTimeout(sock_read=float("nan"))),
        ("rate_limit", 0),
        ("rate_limit", float("nan")),
        ("rate_limit", float("inf")),
        ("rate_limit", True),
        ("rate_limit", "80"),
        ("rate_limit", object()),
    ],
)
def test_client_options_validated(option: str, value: object) -> None:
    with pytest.raises(ValidationError, match=option):
        Dialog360Client("k", **{option: value})  # type: ignore[arg-type]
