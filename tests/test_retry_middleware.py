"""Fault injection against the real local fake server (middlewares do not run under
aioresponses). Each test asserts the requests the server saw, the outcome, and duplicates."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from dialog360_async import (
    DeliveryUnknownError,
    Dialog360Client,
    Location,
    NotEngagedError,
    PairRateLimitError,
    RetryPolicy,
    ServerError,
    SpamRateLimitError,
    TransportError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY

HQ = Location(latitude=1, longitude=2)
TO = "+16505551234"
WA = "16505551234"


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def policy(sleeps: Sleeps, **kw: Any) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, random=lambda: 0.5, **kw)


def meta(code: int) -> dict[str, Any]:
    return {"error": {"message": f"(#{code}) x", "type": "OAuthException", "code": code}}


def gateway_limit() -> dict[str, Any]:
    msg = "You have exceeded the limit of 1 request every 1 seconds. Try again later."
    return {"meta": {"success": False, "httpCode": 400, "developerMessage": msg}}


def sends_seen(fake: FakeDialog360) -> int:
    return sum(1 for r in fake.requests if r.path == "/messages")


async def send(fake: FakeDialog360, retry: RetryPolicy | None, to: str = TO) -> Any:
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=retry) as client:
        return await client.send_location(to, HQ)


# --- pushback: retried, honouring Retry-After --------------------------------------------------


async def test_429_retry_after_waits_at_least_the_header(
    fake: FakeDialog360, sleeps: Sleeps
) -> None:
    fake.script(
        "POST",
        "/messages",
        FakeResponse(status=429, json=meta(130429), headers={"Retry-After": "2"}),
    )
    sent = await send(fake, policy(sleeps))
    assert sent.message_id
    assert sleeps.delays == [2.0]  # backoff would be 0.25 s: the header is the floor
    assert sends_seen(fake) == 2
    assert fake.sends[WA] == 1 and fake.duplicates() == {}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("garbage", 0.25),  # ignored: backoff 0.5 * min(30, 0.5 * 2**0)
        ("-5", 0.25),  # negative means "now": the backoff stands
        ("1e30", 120.0),  # clamped to max_retry_after
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.25),  # in the past
        ("9" * 35, 120.0),
    ],
)
async def test_malformed_or_huge_retry_after(
    fake: FakeDialog360, sleeps: Sleeps, header: str, expected: float
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=429, headers={"Retry-After": header}))
    await send(fake, policy(sleeps))
    assert sleeps.delays == [expected]
    assert sends_seen(fake) == 2


async def test_retry_after_ms(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.script("POST", "/messages", FakeResponse(status=429, headers={"retry-after-ms": "1500"}))
    await send(fake, policy(sleeps))
    assert sleeps.delays == [1.5]


@pytest.mark.parametrize(
    "response",
    [
        FakeResponse(status=400, json=meta(130429)),
        FakeResponse(status=400, json=meta(80007)),
        FakeResponse(status=429, json=meta(4)),
        FakeResponse(status=400, json=gateway_limit()),
        FakeResponse(status=503),
        FakeResponse(status=502),
        FakeResponse(status=503, json=meta(131016)),
    ],
    ids=["130429", "80007", "4", "gateway-400", "503", "502", "131016"],
)
async def test_unprocessed_failures_are_retried(
    fake: FakeDialog360, sleeps: Sleeps, response: FakeResponse
) -> None:
    fake.script("POST", "/messages", response, response)
    sent = await send(fake, policy(sleeps))
    assert sent.message_id
    assert sends_seen(fake) == 3
    assert fake.sends[WA] == 1
    assert sleeps.delays == [0.25, 0.5]  # full jitter with random() = 0.5: 0.5*0.5, 0.5*1.0


async def test_gives_up_after_max_attempts(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.script("POST", "/messages", *[FakeResponse(status=503)] * 10)
    with pytest.raises(ServerError):
        await send(fake, policy(sleeps, max_attempts=3))
    assert sends_seen(fake) == 3
    assert len(sleeps.delays) == 2


# --- ambiguous: never retried for a send unless opted in ---------------------------------------


@pytest.mark.parametrize("status", [500, 504])
async def test_ambiguous_5xx_on_send_not_retried(
    fake: FakeDialog360, sleeps: Sleeps, status: int
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=status, process=True))
    with pytest.raises(DeliveryUnknownError):
        await send(fake, policy(sleeps))
    assert sends_seen(fake) == 1
    assert sleeps.delays == []
    assert fake.duplicates() == {}


@pytest.mark.parametrize("status", [500, 504])
async def test_ambiguous_5xx_retried_when_opted_in(
    fake: FakeDialog360, sleeps: Sleeps, status: int
) -> None:
    fake.script("POST", "/messages", FakeResponse(status=status, process=True))
    sent = await send(fake, policy(sleeps, retry_ambiguous=True))
    assert sent.message_id
    assert sends_seen(fake) == 2
    assert fake.duplicates() == {WA: 2}  # the price of opting in, counted


async def test_close_after_read_is_unknown_after_one_request(
    fake: FakeDialog360, sleeps: Sleeps
) -> None:
    fake.script("POST", "/messages", FakeResponse(close=True, process=True))
    with pytest.raises(DeliveryUnknownError):
        await send(fake, policy(sleeps))
    assert sends_seen(fake) == 1
    assert fake.sends[WA] == 1
    assert sleeps.delays == []


async def test_read_timeout_is_unknown_after_one_request(
    fake: FakeDialog360, sleeps: Sleeps
) -> None:
    fake.script("POST", "/messages", FakeResponse(delay=0.5, process=True))
    async with Dialog360Client(
        API_KEY, base_url=fake.url, retry=policy(sleeps), timeout=0.05
    ) as client:
        with pytest.raises(DeliveryUnknownError):
            await client.send_location(TO, HQ)
    assert sends_seen(fake) == 1
    assert sleeps.delays == []


async def test_opted_in_ambiguous_then_failure_stays_unknown(
    fake: FakeDialog360, sleeps: Sleeps
) -> None:
    fake.script(
        "POST",
        "/messages",
        FakeResponse(status=500, process=True),
        FakeResponse(status=400, json=meta(131026)),
    )
    with pytest.raises(DeliveryUnknownError) as info:
        await send(fake, policy(sleeps, retry_ambiguous=True))
    assert info.value.cause is not None and info.value.cause.code == 131026
    assert sends_seen(fake) == 2


# --- nothing sent: retried ---------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_connection_refused_retried_then_transport_error(sleeps: Sleeps) -> None:
    async with Dialog360Client(
        API_KEY, base_url=closed_port_url(), retry=policy(sleeps, max_attempts=4)
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.send_location(TO, HQ)
    assert type(info.value) is TransportError
    assert info.value.sent is False
    assert sleeps.delays == [0.25, 0.5, 1.0]  # 4 attempts


# --- no retry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (FakeResponse(status=400, json=meta(131048)), SpamRateLimitError),
        (FakeResponse(status=400, json=meta(131047)), NotEngagedError),
    ],
)
async def test_permanent_errors_not_retried(
    fake: FakeDialog360, sleeps: Sleeps, response: FakeResponse, error: type[Exception]
) -> None:
    fake.script("POST", "/messages", response)
    with pytest.raises(error):
        await send(fake, policy(sleeps))
    assert sends_seen(fake) == 1
    assert sleeps.delays == []


async def test_redirect_not_retried_nor_followed(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.script("POST", "/messages", FakeResponse(redirect_to="http://127.0.0.1:9/x"))
    with pytest.raises(Exception, match="redirect not followed"):
        await send(fake, policy(sleeps))
    assert len(fake.requests) == 1


# --- 131056: only that recipient waits ---------------------------------------------------------


async def test_pair_limit_delays_only_that_recipient(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.fail_recipient(TO, code=131056, times=2)
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=policy(sleeps)) as client:
        other = await client.send_location("+4915112345678", HQ)
        assert sleeps.delays == []
        sent = await client.send_location(TO, HQ)
    assert other.message_id and sent.message_id
    assert sleeps.delays == [1.0, 4.0]  # 4^n seconds
    assert fake.sends == {"4915112345678": 1, WA: 1}


async def test_pair_limit_exhausted(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.fail_recipient(TO, code=131056)
    with pytest.raises(PairRateLimitError):
        await send(fake, policy(sleeps, max_attempts=5))
    assert sleeps.delays == [1.0, 4.0, 16.0, 64.0]


# --- retry budget and deadline ------------------------------------------------------------------


async def test_sustained_503_empties_the_budget_then_fails_fast(
    fake: FakeDialog360, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dialog360_async")
    fake.script("POST", "/messages", *[FakeResponse(status=503)] * 1000)
    failures = 0
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=policy(sleeps)) as client:
        for _ in range(60):
            try:
                await client.send_location(TO, HQ)
            except ServerError:
                failures += 1
        assert client.retry_budget.exhausted
    assert failures == 60
    # 500 / 5 = 100 retries: 25 sends x (1 + 4 retries), then 35 sends with no retry.
    assert sends_seen(fake) == 25 * 5 + 35
    warnings = [r for r in caplog.records if "budget exhausted" in r.getMessage()]
    assert len(warnings) == 1


async def test_budget_refills_on_success(fake: FakeDialog360, sleeps: Sleeps) -> None:
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=policy(sleeps)) as client:
        fake.script("POST", "/messages", FakeResponse(status=503))
        await client.send_location(TO, HQ)
        assert client.retry_budget.available == 500  # the retry's cost came back


async def test_deadline_stops_retries(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.script("POST", "/messages", *[FakeResponse(status=503)] * 10)
    with pytest.raises(ServerError):  # the first retry would wait 5 s: past the deadline
        await send(fake, policy(sleeps, base_delay=10, deadline=1.0))
    assert sends_seen(fake) == 1


# --- idempotent calls retry ambiguous failures --------------------------------------------------


async def test_idempotent_calls_retry_ambiguous_failures(
    fake: FakeDialog360, sleeps: Sleeps
) -> None:
    fake.engage(TO)
    fake.script(
        "POST",
        "/block_users",
        FakeResponse(status=500, process=True),
        FakeResponse(close=True, process=True),
    )
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=policy(sleeps)) as client:
        result = await client.block_users([TO])
    assert result.ok
    assert len([r for r in fake.requests if r.path == "/block_users"]) == 3
    assert fake.blocklist(API_KEY) == [WA]


# --- rate limiter feedback and logging ---------------------------------------------------------


async def test_throughput_error_slows_the_client_down(fake: FakeDialog360, sleeps: Sleeps) -> None:
    fake.script("POST", "/messages", FakeResponse(status=429, json=meta(130429)))
    async with Dialog360Client(
        API_KEY, base_url=fake.url, retry=policy(sleeps), rate_limit=80.0
    ) as client:
        await client.send_location(TO, HQ)
        assert client.rate_limit is not None
        # cut to 80 x 0.7 = 56, then the success starts the recovery toward 80
        assert 56.0 <= client.rate_limit.rate < 57.0


async def test_one_debug_record_per_attempt_without_key(
    fake: FakeDialog360, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dialog360_async")
    fake.script("POST", "/messages", FakeResponse(status=429, json=meta(130429)))
    await send(fake, policy(sleeps))
    records = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(records) == 2
    assert "POST /messages attempt 1 -> 429 (code 130429); retry in 0.250 s" in records[0]
    assert "POST /messages attempt 2 -> 200" in records[1]
    assert not [r for r in records if API_KEY in r]
