"""Closing, event loops and external sessions: every misuse ends in a clear SDK error, never a
bare CancelledError nobody asked for, aiohttp's RuntimeError, or a silently reopened session."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from dialog360_async import (
    DeliveryUnknownError,
    Dialog360Client,
    Location,
    OnPremiseClient,
    RetryPolicy,
    SessionPool,
    TransportError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY
from .hostile import hostile, trickle_body

HQ = Location(latitude=1, longitude=2)
TO = "+16505551234"


async def first_blocked(client: Dialog360Client) -> object:
    return await anext(client.list_blocked_users())


async def outcome_of(task: asyncio.Task[object]) -> BaseException | object:
    try:
        return await task
    except BaseException as exc:  # CancelledError included: that is what is being checked
        return exc


async def test_closing_a_client_fails_its_calls_in_flight_with_sdk_errors() -> None:
    async with hostile(trickle_body(0.05, 5.0)) as server:
        client = Dialog360Client(API_KEY, base_url=server.url, retry=None)
        calls = [
            asyncio.create_task(client.send_location(TO, HQ)),
            asyncio.create_task(first_blocked(client)),
        ]
        await asyncio.sleep(0.2)  # both are reading their answers
        await client.close()
        send, listing = [await outcome_of(t) for t in calls]
    assert isinstance(send, DeliveryUnknownError)  # it left: delivery unknown
    assert type(listing) is TransportError


async def test_closing_the_pool_fails_calls_waiting_for_a_connection_as_not_sent() -> None:
    async with hostile(trickle_body(0.05, 5.0)) as server:
        pool = SessionPool(limit=1)
        client = pool.client("k", base_url=server.url, retry=None)
        calls: list[asyncio.Task[object]] = [
            asyncio.create_task(client.send_location(TO, HQ)),
            asyncio.create_task(client.send_location(TO, HQ)),
            asyncio.create_task(first_blocked(client)),
        ]
        await asyncio.sleep(0.2)  # one holds the only connection, two wait for it
        await pool.close()
        outcomes = [await outcome_of(t) for t in calls]
    assert not [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
    assert isinstance(outcomes[0], DeliveryUnknownError)
    for waited in outcomes[1:]:
        assert type(waited) is TransportError, waited
        assert waited.sent is False  # they never got a connection: safe to send again
    assert server.requests == 1


async def test_closing_during_a_retry_wait_stops_the_retries(fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(status=503))
    client = Dialog360Client(
        API_KEY, base_url=fake.url, retry=RetryPolicy(base_delay=0.4, random=lambda: 1.0)
    )
    call = asyncio.create_task(client.send_location(TO, HQ))
    await asyncio.sleep(0.2)  # the 503 came back; the client waits 0.4 s to retry
    await client.close()
    error = await outcome_of(call)
    assert type(error) is TransportError and error.sent is False  # 503: nothing was processed
    assert "closed" in str(error)
    assert len(fake.requests) == 1


async def test_a_caller_cancelling_still_gets_cancelled_error(fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(delay=2.0))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        call = asyncio.create_task(client.send_location(TO, HQ))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call


@pytest.mark.parametrize("cls", [Dialog360Client, OnPremiseClient])
async def test_a_closed_client_raises_and_never_reopens(
    fake: FakeDialog360, cls: type[Dialog360Client]
) -> None:
    client = cls(API_KEY, base_url=fake.url)
    await client.send_location(TO, HQ)
    await client.close()
    for call in (client.send_location(TO, HQ), anext(client.list_blocked_users())):
        with pytest.raises(TransportError, match="client is closed"):
            await call
    assert len(fake.requests) == 1


async def test_pool_after_close_raises(fake: FakeDialog360) -> None:
    pool = SessionPool()
    client = pool.client("k", base_url=fake.url)
    await pool.close()
    with pytest.raises(TransportError, match="closed"):
        await client.send_location(TO, HQ)
    assert fake.requests == []


def test_a_second_event_loop_gets_a_clear_error() -> None:
    client = Dialog360Client(API_KEY, base_url="http://127.0.0.1:9", retry=None)
    pool = SessionPool()
    pooled = pool.client("k", base_url="http://127.0.0.1:9", retry=None)

    async def first() -> None:
        async with FakeDialog360(api_keys=[API_KEY, "k"], throughput=None) as fake:
            for c in (client, pooled):
                c._transport.base_url = fake.url  # the same clients, a live server
                c._transport._urls.clear()
                await c.send_location(TO, HQ)

    async def second(c: Dialog360Client) -> BaseException | None:
        try:
            await c.send_location(TO, HQ)
        except Exception as exc:
            return exc
        return None

    asyncio.run(first())
    for c in (client, pooled):
        error = asyncio.run(second(c))
        assert type(error) is TransportError, error
        assert "event loop" in str(error) and error.sent is False
    asyncio.run(client.close())
    asyncio.run(pool.close())


async def test_an_external_session_closed_before_or_after(fake: FakeDialog360) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(ValidationError, match="session"):
        Dialog360Client(API_KEY, base_url=fake.url, session=session)

    session = aiohttp.ClientSession()
    client = Dialog360Client(API_KEY, base_url=fake.url, session=session)
    await client.send_location(TO, HQ)
    await session.close()  # its owner closed it
    with pytest.raises(TransportError, match="session given to the client is closed"):
        await client.send_location(TO, HQ)
    await client.close()
    assert len(fake.requests) == 1


@pytest.mark.parametrize("session", ["x", object(), 1])
def test_session_type_validated(session: object) -> None:
    with pytest.raises(ValidationError, match="session"):
        Dialog360Client(API_KEY, session=session)  # type: ignore[arg-type]


async def test_an_external_sessions_own_middlewares_are_not_run(fake: FakeDialog360) -> None:
    seen: list[str] = []

    async def spy(
        req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        seen.append(req.method)
        return await handler(req)

    async with aiohttp.ClientSession(middlewares=(spy,)) as session:
        async with Dialog360Client(API_KEY, base_url=fake.url, session=session) as client:
            await client.send_location(TO, HQ)
    assert seen == []
