"""Servers that misbehave: answers that cannot be read as a success, bodies over the size cap,
bytes that trickle in, bodies cut short. A send the server may have accepted is never "failed"
(a resume would send it again): it is DeliveryUnknownError, outcome "unknown"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from dialog360_async import (
    APIError,
    BulkSender,
    DeliveryUnknownError,
    Dialog360Client,
    Location,
    LocationMessage,
    RetryPolicy,
    ServerError,
    SessionPool,
    TransportError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY
from .hostile import (
    OK_BODY,
    chunk,
    endless,
    gzip_bomb,
    head,
    hostile,
    trickle_body,
    trickle_head,
    truncated,
)

HQ = Location(latitude=1, longitude=2)
TO = "+16505551234"

UNREADABLE = {
    "html": FakeResponse(status=200, body=b"<html>ok</html>"),
    "truncated-json": FakeResponse(status=200, body=b'{"messages":[{"id":"wamid.A'),
    "empty": FakeResponse(status=200),
    "204": FakeResponse(status=204),
    "202-no-messages": FakeResponse(status=202, json={"contacts": [{"wa_id": "1"}]}),
    "messages-empty": FakeResponse(status=200, json={"messages": []}),
    "messages-not-a-list": FakeResponse(status=200, json={"messages": {"id": "wamid.A"}}),
    "id-missing": FakeResponse(status=200, json={"messages": [{}]}),
    "id-empty": FakeResponse(status=200, json={"messages": [{"id": ""}]}),
    "id-null": FakeResponse(status=200, json={"messages": [{"id": None}]}),
    "id-number": FakeResponse(status=200, json={"messages": [{"id": 123}]}),
    "id-list": FakeResponse(status=200, json={"messages": [{"id": ["wamid.A"]}]}),
    "invalid-utf8": FakeResponse(status=200, body=b'{"messages":[{"id":"wamid.\xff"}]}'),
    "lone-surrogate": FakeResponse(status=200, body=b'{"messages":[{"id":"\\ud800"}]}'),
    "deep": FakeResponse(status=200, body=b"[" * 100_000 + b"]" * 100_000),
    "huge-number": FakeResponse(status=200, body=b'{"messages":[{"id":1e999}]}'),
}


@pytest.mark.parametrize("response", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_unreadable_success_on_send_is_unknown(
    fake: FakeDialog360, cloud: Dialog360Client, response: FakeResponse
) -> None:
    fake.script("POST", "/messages", response)
    with pytest.raises(DeliveryUnknownError, match=f"HTTP {response.status}") as info:
        await cloud.send_location(TO, HQ)
    assert info.value.sent and not info.value.retryable
    assert info.value.request == "POST /messages"
    assert len(fake.requests) == 1


@pytest.mark.parametrize("response", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_unreadable_success_is_never_retried_even_when_opted_in(
    fake: FakeDialog360, response: FakeResponse
) -> None:
    fake.script("POST", "/messages", response)
    retry = RetryPolicy(retry_ambiguous=True, base_delay=0)
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=retry) as client:
        with pytest.raises(DeliveryUnknownError):
            await client.send_location(TO, HQ)
    assert len(fake.requests) == 1  # a 2xx was accepted: sending again could deliver twice


async def test_null_id_is_not_recorded_as_sent(fake: FakeDialog360) -> None:
    # It used to come back as SentMessage(message_id="None") and be journaled "sent".
    fake.script("POST", "/messages", FakeResponse(json={"messages": [{"id": None}]}))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        sender = BulkSender(client, rate_limit=None)
        outcomes = [o async for o in sender.run([LocationMessage(to=TO, location=HQ)])]
    assert [o.status for o in outcomes] == ["unknown"]
    assert isinstance(outcomes[0].error, DeliveryUnknownError)
    assert outcomes[0].result is None


async def test_valid_answer_with_odd_extra_fields_is_sent(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script(
        "POST", "/messages", FakeResponse(json={"messages": [{"id": "wamid.X"}], "new": [1]})
    )
    assert (await cloud.send_location(TO, HQ)).message_id == "wamid.X"


async def test_unreadable_success_on_idempotent_call_is_api_error(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    fake.script("GET", "/block_users", FakeResponse(status=200, body=b"[" * 100_000))
    with pytest.raises(APIError, match="not JSON") as info:
        await anext(cloud.list_blocked_users())
    assert info.value.status == 200


async def test_body_cut_short_on_send_is_unknown() -> None:
    async with hostile(truncated()) as server:
        async with Dialog360Client(API_KEY, base_url=server.url, retry=None) as client:
            with pytest.raises(DeliveryUnknownError, match="ClientPayloadError"):
                await client.send_location(TO, HQ)
    assert server.requests == 1


async def test_body_cut_short_on_idempotent_call_is_retried_transport_error() -> None:
    async with hostile(truncated()) as server:
        retry = RetryPolicy(max_attempts=2, base_delay=0)
        async with Dialog360Client(API_KEY, base_url=server.url, retry=retry) as client:
            with pytest.raises(TransportError) as info:
                await anext(client.list_blocked_users())
    assert type(info.value) is TransportError and info.value.sent
    assert server.requests == 2


# --- the size cap -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 1.5, "8", True, None])
def test_max_response_bytes_validated(value: object) -> None:
    with pytest.raises(ValidationError, match="max_response_bytes"):
        Dialog360Client(API_KEY, max_response_bytes=value)  # type: ignore[arg-type]


async def test_success_over_the_cap_is_unknown_for_a_send(fake: FakeDialog360) -> None:
    fake.script("POST", "/messages", FakeResponse(body=OK_BODY + b" " * 100))
    async with Dialog360Client(
        API_KEY, base_url=fake.url, retry=None, max_response_bytes=len(OK_BODY)
    ) as client:
        with pytest.raises(DeliveryUnknownError, match="max_response_bytes"):
            await client.send_location(TO, HQ)
        fake.script("POST", "/messages", FakeResponse(body=OK_BODY))
        assert (await client.send_location(TO, HQ)).message_id == "wamid.HOSTILE"  # at the cap


async def test_success_over_the_cap_on_idempotent_call_is_api_error() -> None:
    async with hostile(endless(200, total=1 << 20)) as server:
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=None, max_response_bytes=4096
        ) as client:
            with pytest.raises(APIError, match="max_response_bytes"):
                await anext(client.list_blocked_users())


@pytest.mark.parametrize("size", [4096, 4097, 70_000])
async def test_chunked_body_at_once_is_capped(size: int) -> None:
    # No Content-Length to refuse it by, and (up to 64 KiB) all of it there with the headers.
    body = b'{"messages": [{"id": "wamid.CAPPED"}]}'
    body += b" " * (size - len(body))

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head(200) + chunk(body) + b"0\r\n\r\n")

    async with hostile(behaviour) as server:
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=None, max_response_bytes=4096
        ) as client:
            if size <= 4096:
                assert (await client.send_location(TO, HQ)).message_id == "wamid.CAPPED"
            else:
                with pytest.raises(DeliveryUnknownError, match="max_response_bytes"):
                    await client.send_location(TO, HQ)


async def test_error_body_over_the_cap_keeps_its_status() -> None:
    async with hostile(endless(503, total=1 << 20)) as server:
        retry = RetryPolicy(max_attempts=2, base_delay=0)
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=retry, max_response_bytes=4096
        ) as client:
            with pytest.raises(ServerError) as info:
                await client.send_location(TO, HQ)  # 503 is "not processed": retried
    assert info.value.status == 503
    assert server.requests == 2


_MEMORY_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from dialog360_async import Dialog360Client, Location, RetryPolicy

    def hwm():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    async def main(urls):
        results = []
        where = Location(latitude=1, longitude=2)
        for url in urls:
            async with Dialog360Client("k", base_url=url, retry=None) as client:
                started = time.monotonic()
                try:
                    await client.send_location("+16505551234", where)
                    error = None
                except Exception as exc:
                    error = type(exc).__name__
                try:
                    await client.list_blocked_users().__anext__()
                    error2 = None
                except Exception as exc:
                    error2 = type(exc).__name__
                results.append([error, error2, time.monotonic() - started])
        return results

    before = hwm()
    results = asyncio.run(main(sys.argv[1:]))
    print(json.dumps({"growth": hwm() - before, "results": results}))
    """
)


async def test_a_gigabyte_body_costs_bounded_memory_and_ends_promptly() -> None:
    # The client runs in a fresh process so that its peak RSS (VmHWM) is its own.
    async with (
        hostile(endless(200)) as chunked_ok,
        hostile(endless(200, length=True)) as sized_ok,
        hostile(endless(500)) as chunked_error,
        hostile(gzip_bomb()) as bomb,
    ):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MEMORY_CHILD,
            chunked_ok.url,
            sized_ok.url,
            chunked_error.url,
            bomb.url,
            stdout=subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    report = json.loads(out)
    assert report["growth"] < 100 * 1024 * 1024, report  # 8 MiB cap, never the whole GiB
    (ok, ok_idem, t1), (sized, sized_idem, t2), (err, err_idem, t3), (gz, gz_idem, t4) = report[
        "results"
    ]
    assert (ok, ok_idem) == ("DeliveryUnknownError", "APIError")
    assert (sized, sized_idem) == ("DeliveryUnknownError", "APIError")
    assert (err, err_idem) == ("DeliveryUnknownError", "ServerError")  # 500: ambiguous
    assert (gz, gz_idem) == ("DeliveryUnknownError", "APIError")  # the cap counts inflated bytes
    assert max(t1, t2, t3, t4) < 10  # reading 1 GiB would take far longer on this machine


# --- time bounds ----------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [trickle_body, trickle_head], ids=["body", "head"])
async def test_trickling_cannot_stretch_an_attempt(behaviour: Any) -> None:
    # One byte every 50 ms would keep a per-read timeout alive for the full 3 s.
    async with hostile(behaviour(0.05, 3.0)) as server:
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=RetryPolicy(deadline=3), timeout=0.5
        ) as client:
            started = time.monotonic()
            with pytest.raises(DeliveryUnknownError, match=r"within 0\.5 s"):
                await client.send_location(TO, HQ)
            elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 0.9
    assert server.requests == 1


async def test_deadline_bounds_attempts_and_waits_of_an_idempotent_call() -> None:
    async with hostile(trickle_body(0.05, 3.0)) as server:
        retry = RetryPolicy(deadline=1.2, base_delay=0.01, max_attempts=10)
        async with Dialog360Client(
            API_KEY, base_url=server.url, retry=retry, timeout=0.5
        ) as client:
            started = time.monotonic()
            with pytest.raises(TransportError, match="TimeoutError"):
                await anext(client.list_blocked_users())
            elapsed = time.monotonic() - started
    assert 1.1 < elapsed < 1.6  # 0.5 + 0.5 + what was left, not 10 attempts of 0.5 s
    assert server.requests == 3


async def test_deadline_bounds_the_pacing_too(fake: FakeDialog360) -> None:
    async with Dialog360Client(
        API_KEY, base_url=fake.url, retry=RetryPolicy(deadline=0.3), rate_limit=1.0
    ) as client:
        await client.send_location(TO, HQ)  # takes the one permit
        started = time.monotonic()
        with pytest.raises(TransportError, match="deadline") as info:
            await client.send_location(TO, HQ)  # the next permit is 1 s away
        elapsed = time.monotonic() - started
    assert type(info.value) is TransportError and info.value.sent is False
    assert elapsed < 0.6
    assert len(fake.requests) == 1


async def test_timeout_while_waiting_for_a_connection_is_not_sent() -> None:
    async with hostile(trickle_body(0.05, 1.0)) as server, SessionPool(limit=1) as pool:
        holder = pool.client("a", base_url=server.url, retry=None, timeout=2.0)
        waiter = pool.client("b", base_url=server.url, retry=None, timeout=0.3)
        first = asyncio.create_task(holder.send_location(TO, HQ))
        await asyncio.sleep(0.1)  # the only connection is taken
        with pytest.raises(TransportError) as info:
            await waiter.send_location(TO, HQ)
        assert server.requests == 1
        assert (await first).message_id == "wamid.HOSTILE"
    assert type(info.value) is TransportError  # not DeliveryUnknownError: it never left
    assert info.value.sent is False and info.value.retryable


async def test_timeout_during_the_tls_handshake_is_not_sent() -> None:
    # The server accepts TCP and never answers the ClientHello: the attempt's time runs out
    # while connecting, before a byte of the request could be written.
    async with hostile(truncated()) as server:
        url = server.url.replace("http://", "https://")
        async with Dialog360Client(API_KEY, base_url=url, retry=None, timeout=0.3) as client:
            started = time.monotonic()
            with pytest.raises(TransportError) as info:
                await client.send_location(TO, HQ)
            elapsed = time.monotonic() - started
    assert type(info.value) is TransportError  # not DeliveryUnknownError: it never left
    assert info.value.sent is False and info.value.retryable
    assert 0.25 < elapsed < 0.8
    assert server.requests == 0
