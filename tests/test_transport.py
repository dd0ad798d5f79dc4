"""The one aiohttp boundary: what each failure becomes, by phase and idempotency."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from dialog360_async import (
    APIError,
    DeliveryUnknownError,
    Dialog360Client,
    Location,
    ServerError,
    SessionPool,
    TransportError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY

HQ = Location(latitude=1, longitude=2)
TO = "+16505551234"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("pooled", [False, True], ids=["own session", "session pool"])
async def test_connections_read_at_most_64_kib_at_a_time(
    fake: FakeDialog360, pooled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio reads into a new 256 KiB bytes each time, past glibc's mmap threshold: an mmap,
    # an mremap and a munmap for every answer (_body.small_reads).
    loop = asyncio.get_running_loop()
    opened: list[asyncio.BaseTransport] = []
    create = loop.create_connection

    async def spy(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await create(*args, **kwargs)
        opened.append(transport)
        return transport, protocol

    monkeypatch.setattr(loop, "create_connection", spy)
    async with SessionPool() as pool:
        client = pool.client(API_KEY, base_url=fake.url) if pooled else None
        async with client or Dialog360Client(API_KEY, base_url=fake.url) as sender:
            await asyncio.gather(*(sender.send_location(TO, HQ) for _ in range(4)))
            await sender.send_location(TO, HQ)
    assert opened
    assert [getattr(t, "max_size", None) for t in opened] == [64 * 1024] * len(opened)


async def test_connection_refused_is_not_sent() -> None:
    async with Dialog360Client(API_KEY, base_url=closed_port_url(), retry=None) as client:
        with pytest.raises(TransportError) as info:
            await client.send_location(TO, HQ)
    assert type(info.value) is TransportError
    assert info.value.sent is False
    assert info.value.retryable
    assert info.value.request == "POST /messages"
    assert info.value.__cause__ is None and info.value.__context__ is None


async def test_close_after_read_on_send_is_unknown(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("POST", "/messages", FakeResponse(close=True, process=True))
    with pytest.raises(DeliveryUnknownError) as info:
        await cloud.send_location(TO, HQ)
    assert info.value.sent
    assert not info.value.retryable
    assert len(fake.requests) == 1
    assert fake.sends["16505551234"] == 1  # it was delivered: that is why it is "unknown"


async def test_close_on_idempotent_call_is_transport_error(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("GET", "/block_users", *[FakeResponse(close=True)] * 2)
    with pytest.raises(TransportError) as info:
        await anext(cloud.list_blocked_users())
    assert type(info.value) is TransportError
    assert info.value.retryable


async def test_read_timeout_on_send_is_unknown(fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(delay=1.0, process=True))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None, timeout=0.1) as client:
        with pytest.raises(DeliveryUnknownError, match="Timeout"):
            await client.send_location(TO, HQ)


@pytest.mark.parametrize("status", [500, 504])
async def test_ambiguous_5xx_on_send_is_unknown(
    fake: FakeDialog360, cloud: Dialog360Client, status: int
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=status))
    with pytest.raises(DeliveryUnknownError) as info:
        await cloud.send_location(TO, HQ)
    assert isinstance(info.value.cause, ServerError)
    assert info.value.cause.status == status


@pytest.mark.parametrize("status", [502, 503])
async def test_unprocessed_5xx_on_send_is_server_error(
    fake: FakeDialog360, cloud: Dialog360Client, status: int
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=status))
    with pytest.raises(ServerError) as info:
        await cloud.send_location(TO, HQ)
    assert not info.value.ambiguous


async def test_500_on_idempotent_call_is_server_error(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("GET", "/block_users", FakeResponse(status=500))
    with pytest.raises(ServerError):
        await anext(cloud.list_blocked_users())


async def test_non_json_success_on_send_is_unknown(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=200, body=b"<html>hi</html>"))
    with pytest.raises(DeliveryUnknownError, match="HTTP 200"):
        await cloud.send_location(TO, HQ)


async def test_non_json_success_on_idempotent_call_is_api_error(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("GET", "/block_users", FakeResponse(status=200, body=b"<html>hi</html>"))
    with pytest.raises(APIError, match="not JSON") as info:
        await anext(cloud.list_blocked_users())
    assert info.value.status == 200


async def test_client_timeout_object_accepted(fake: FakeDialog360) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with Dialog360Client(API_KEY, base_url=fake.url, timeout=timeout) as client:
        await client.send_location(TO, HQ)


@pytest.mark.parametrize("timeout", [0, -1, "5", True])
def test_bad_timeout_rejected(timeout: object) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        Dialog360Client(API_KEY, timeout=timeout)  # type: ignore[arg-type]


def test_client_needs_no_event_loop() -> None:
    client = Dialog360Client(API_KEY)
    assert client.base_url == "https://waba-v2.360dialog.io"


async def test_close_is_idempotent_and_final(fake: FakeDialog360) -> None:
    client = Dialog360Client(API_KEY, base_url=fake.url)
    await client.send_location(TO, HQ)
    await client.close()
    await client.close()
    assert client.closed
    with pytest.raises(TransportError, match="closed") as info:
        await client.send_location(TO, HQ)  # a closed client never opens a new session
    assert info.value.sent is False and not info.value.retryable
    assert fake.sends["16505551234"] == 1
