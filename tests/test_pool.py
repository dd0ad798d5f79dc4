"""SessionPool: one connector for many channels, cached clients, clean shutdown."""

from __future__ import annotations

import asyncio

import pytest

from dialog360_async import (
    Dialog360Client,
    Location,
    OnPremiseClient,
    RetryPolicy,
    SessionPool,
    TransportError,
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
            sessions = {c._transport._get_session() for c in clients}
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
        session = client._transport._get_session()
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
        await pool.client("b", base_url=fake.url).send_location("+16505551234", HQ)
        await first.send_location("+16505551234", HQ)
    assert fake.sends["16505551234"] == 2
