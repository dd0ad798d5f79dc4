"""Error trackers (Sentry, ``pytest -l``, ``TracebackException(capture_locals=True)``) record the
locals of every frame of an exception's traceback. For every error path of the clients, no
frame of the SDK error (nor of its causes and contexts) may hold the API key. SDK errors also
pickle and copy, since task queues move them between processes."""

from __future__ import annotations

import asyncio
import copy
import pickle
import socket
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dialog360_async import (
    DeliveryUnknownError,
    Dialog360Client,
    Dialog360Error,
    Location,
    OnPremiseClient,
    RetryPolicy,
    SessionPool,
    TransportError,
)
from dialog360_async._transport import Transport
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY
from .hostile import endless, hostile, trickle_body

HQ = Location(latitude=1, longitude=2)
TO = "+16505551234"
AMBIGUOUS = RetryPolicy(max_attempts=2, base_delay=0, retry_ambiguous=True)


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    todo = [error]
    while todo:
        one = todo.pop()
        if any(one is seen for seen in found):
            continue
        found.append(one)
        for linked in (one.__cause__, one.__context__, getattr(one, "cause", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return found


def leaks(error: BaseException) -> list[str]:
    """Every place the key shows up: frame locals (repr), str/repr/args of the chain, and the
    text a tracker would store."""
    texts: list[str] = []
    for one in _chain(error):
        texts += [str(one), repr(one), repr(one.args)]
        tb = one.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, value in frame.f_locals.items():
                texts.append(f"{frame.f_code.co_qualname}: {name} = {value!r}")
            tb = tb.tb_next
    texts += traceback.TracebackException.from_exception(error, capture_locals=True).format()
    return [t for t in texts if API_KEY in t]


async def error_of(call: Awaitable[Any]) -> Dialog360Error:
    try:
        await call
    except Dialog360Error as exc:
        return exc
    raise AssertionError("no error")


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


Case = Callable[[FakeDialog360], Awaitable[Dialog360Error]]


def scripted(
    *responses: FakeResponse, retry: RetryPolicy | None = None, get: bool = False, **options: Any
) -> Case:
    async def case(fake: FakeDialog360) -> Dialog360Error:
        fake.script("GET" if get else "POST", "/block_users" if get else "/messages", *responses)
        async with Dialog360Client(API_KEY, base_url=fake.url, retry=retry, **options) as client:
            if get:
                return await error_of(anext(client.list_blocked_users()))
            return await error_of(client.send_location(TO, HQ))

    return case


async def refused(_: FakeDialog360) -> Dialog360Error:
    async with Dialog360Client(API_KEY, base_url=closed_port(), retry=AMBIGUOUS) as client:
        return await error_of(client.send_location(TO, HQ))


async def oversized(_: FakeDialog360) -> Dialog360Error:
    async with hostile(endless(200, total=1 << 20)) as server:
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=AMBIGUOUS, max_response_bytes=1024
        ) as client:
            return await error_of(client.send_location(TO, HQ))


async def trickled(_: FakeDialog360) -> Dialog360Error:
    async with hostile(trickle_body(0.05, 2.0)) as server:
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=AMBIGUOUS, timeout=0.2
        ) as client:
            return await error_of(client.send_location(TO, HQ))


async def closed_in_flight(fake: FakeDialog360) -> Dialog360Error:
    fake.script("POST", "/v1/messages", FakeResponse(delay=2.0))
    pool = SessionPool()
    client = pool.on_premise_client(API_KEY, base_url=fake.url, retry=AMBIGUOUS)
    call = asyncio.create_task(error_of(client.send_location(TO, HQ)))
    await asyncio.sleep(0.1)
    await pool.close()
    return await call


async def closed_before(fake: FakeDialog360) -> Dialog360Error:
    client = OnPremiseClient(API_KEY, base_url=fake.url)
    await client.close()
    return await error_of(client.send_location(TO, HQ))


CASES: dict[str, Case] = {
    "401": scripted(FakeResponse(status=401)),
    "429": scripted(FakeResponse(status=429), FakeResponse(status=429), retry=AMBIGUOUS),
    "500": scripted(FakeResponse(status=500)),
    "500-retry-ambiguous": scripted(
        FakeResponse(status=500), FakeResponse(status=500), retry=AMBIGUOUS
    ),
    "504": scripted(FakeResponse(status=504), retry=RetryPolicy()),
    "503-exhausted": scripted(FakeResponse(status=503), FakeResponse(status=503), retry=AMBIGUOUS),
    "reset": scripted(FakeResponse(close=True)),
    "reset-retry-ambiguous": scripted(
        FakeResponse(close=True), FakeResponse(close=True), retry=AMBIGUOUS
    ),
    "timeout": scripted(FakeResponse(delay=1.0), FakeResponse(delay=1.0), timeout=0.1),
    "unreadable-2xx": scripted(FakeResponse(body=b"<html>"), retry=AMBIGUOUS),
    "redirect": scripted(FakeResponse(redirect_to="http://127.0.0.2:1/x")),
    "get-500": scripted(
        FakeResponse(status=500), FakeResponse(status=500), retry=AMBIGUOUS, get=True
    ),
    "get-reset": scripted(*[FakeResponse(close=True)] * 4, retry=AMBIGUOUS, get=True),
    "get-unreadable": scripted(FakeResponse(body=b"{"), get=True),
    "refused": refused,
    "oversized": oversized,
    "trickled": trickled,
    "closed-in-flight": closed_in_flight,
    "closed-before": closed_before,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_no_frame_of_an_sdk_error_holds_the_key(fake: FakeDialog360, case: Case) -> None:
    error = await case(fake)
    assert error.__traceback__ is not None  # the walk below is real
    assert leaks(error) == []


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": -1},
        {"max_response_bytes": 0},
        {"base_url": "http://example.com"},
        {"rate_limit": "fast"},
        {"session": "s"},
        {"retry": 3},
    ],
)
def test_no_frame_of_a_constructor_error_holds_the_key(options: dict[str, Any]) -> None:
    for make in (
        lambda: Dialog360Client(API_KEY, **options),
        lambda: OnPremiseClient(API_KEY, **options),
        lambda: SessionPool().client(API_KEY, **options),
    ):
        with pytest.raises(Dialog360Error) as info:
            make()
        assert leaks(info.value) == []


def test_the_transport_shows_no_key() -> None:
    client = Dialog360Client(API_KEY)
    transport = client._transport
    assert isinstance(transport, Transport)
    assert API_KEY not in repr(transport) and API_KEY not in str(transport)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_sdk_errors_pickle_and_copy(fake: FakeDialog360, case: Case) -> None:
    error = await case(fake)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error) and repr(clone) == repr(error)
        if isinstance(error, TransportError):
            assert isinstance(clone, TransportError)
            assert (clone.sent, clone.retryable, clone.request) == (
                error.sent,
                error.retryable,
                error.request,
            )
        if isinstance(error, DeliveryUnknownError) and error.cause is not None:
            assert isinstance(clone, DeliveryUnknownError) and clone.cause is not None
            assert type(clone.cause) is type(error.cause)
            assert clone.cause.status == error.cause.status
        assert leaks(clone) == []
