"""Broadcasts that behave: throttling and "nothing sent" make a channel wait, an outage ends it
``unreachable``, a credential or permission failure halts it at the first answer, and the
summary counts failures by reason (design.md, "Broadcasts that behave")."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from dialog360_async import (
    BulkSender,
    Dialog360Client,
    Location,
    LocationMessage,
    OnPremiseClient,
    RetryPolicy,
    UnreachableError,
)
from dialog360_async._gate import Gate, waits
from dialog360_async._retry import RetryBudget
from dialog360_async.errors import (
    AuthenticationError,
    DeliveryUnknownError,
    PairRateLimitError,
    RateLimitError,
    ServerError,
    TransportError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY

HQ = Location(latitude=52.52, longitude=13.405)
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


def _messages(count: int, start: int = 0) -> list[LocationMessage]:
    return [LocationMessage(to=f"+1650{n:07d}", location=HQ) for n in range(start, start + count)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- what waits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitError("throttled", status=429, code=130429), True),
        (RateLimitError("rate", status=400), True),
        (PairRateLimitError("pair", status=400, code=131056), False),
        (ServerError("unavailable", status=503), True),
        (ServerError("bad gateway", status=502), True),
        (ServerError("internal", status=500, ambiguous=True), False),
        (TransportError("refused", sent=False), True),
        (TransportError("reset after sending", sent=True), False),
        (TransportError("the client was closed", sent=False, retryable=False), False),
        (DeliveryUnknownError("timeout"), False),
        (UnreachableError("down"), False),
        (AuthenticationError("bad key", status=401), False),
    ],
)
def test_only_what_was_provably_not_processed_waits(error: Exception, expected: bool) -> None:
    assert waits(error) is expected


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_round_of_failures_pauses_once_and_a_success_starts_over() -> None:
    clock = _Clock()
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, random=lambda: 1.0)
    gate = Gate(policy, 60.0, clock, clock.sleep)
    refused = "refused"
    round = gate.round
    assert all(gate.failed(refused, None, round) for _ in range(32))  # 32 workers, one round
    assert (gate.strikes, gate.until) == (1, 102.0)  # 2 s: base * 2**1, one pause
    clock.now = 102.0
    gate.failed(refused, None, gate.round)
    assert (gate.strikes, gate.until) == (2, 106.0)  # the next round doubles it
    gate.succeeded()
    gate.failed(refused, None, gate.round)
    assert gate.strikes == 1 and gate.failing_since == 102.0


def test_retry_after_is_the_pause_and_the_outage_ends_on_time() -> None:
    clock = _Clock()
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, random=lambda: 0.0)
    gate = Gate(policy, 10.0, clock, clock.sleep)
    gate.failed("429", 4.0, gate.round)
    assert gate.until == 104.0
    clock.now = 109.5
    gate.failed("refused", None, gate.round)
    assert gate.until == 110.0  # never past the outage timeout
    clock.now = 110.0
    assert gate.failed("refused", None, gate.round) is False
    assert isinstance(gate.down, UnreachableError) and gate.closed is gate.down
    assert gate.check() is not None  # attempts about to be made are not made


def _answers(fake: FakeDialog360, status: int) -> int:
    return int(fake.stats()["responses"]["by_status"].get(str(status), 0))


# -- a wrong key -----------------------------------------------------------------------------


async def test_a_wrong_key_halts_its_channel_at_the_first_answers_and_the_other_goes_on(
    fake: FakeDialog360,
) -> None:
    wrong = Dialog360Client("wrong-key", base_url=fake.url, retry=FAST, rate_limit=None)
    right = Dialog360Client(API_KEY, base_url=fake.url, retry=FAST, rate_limit=None)
    items = [(wrong, m) for m in _messages(300)] + [(right, m) for m in _messages(300, 300)]
    async with wrong, right:
        sender = BulkSender(concurrency=8, rate_limit=None)
        summary = await sender.send_all(items)
    refused = _answers(fake, 401)
    assert 1 <= refused <= 8  # at most one request per worker, then it stops
    assert summary.sent == 300 and fake.sends.total() == 300
    assert summary.failed == refused and summary.cancelled == 300 - refused
    assert summary.halted and summary.halted[0].startswith("channel-1: ")
    by_reason = {(f.status, f.reason): f.count for f in summary.failures}
    assert by_reason == {
        ("failed", "authentication"): refused,
        ("cancelled", "authentication"): 300 - refused,
    }
    assert "reason:    " in str(summary) and "authentication" in str(summary)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (FakeResponse(status=403, json={"meta": {"developer_message": "blocked"}}), "permission"),
        (
            FakeResponse(
                status=400,
                json={"error": {"code": 131031, "message": "Business account locked"}},
            ),
            "account-locked",
        ),
        (
            FakeResponse(
                status=400,
                json={
                    "meta": {
                        "http_code": 400,
                        "developer_message": "Your WhatsApp for Business API has been disabled",
                    }
                },
            ),
            "channel-disabled",
        ),
    ],
)
async def test_permission_and_account_failures_halt_the_channel(
    fake: FakeDialog360, answer: FakeResponse, reason: str
) -> None:
    fake.script("POST", "/messages", answer)
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=FAST, rate_limit=None) as c:
        summary = await BulkSender(c, concurrency=1).send_all(_messages(20))
    assert (summary.failed, summary.cancelled, summary.sent) == (1, 19, 0)
    assert {f.reason for f in summary.failures} == {reason}
    assert fake.sends.total() == 0 and summary.halted


# -- throttling and outages ------------------------------------------------------------------


async def test_an_unpaced_broadcast_against_a_throttling_server_fails_nothing() -> None:
    async with FakeDialog360(api_keys=[API_KEY], throughput=80) as fake:
        async with Dialog360Client(API_KEY, base_url=fake.url, retry=FAST, rate_limit=None) as c:
            summary = await BulkSender(c, concurrency=16).send_all(_messages(200))
        throttled = fake.stats()["throttled"]["by_reason"].get("130429", 0)
    assert throttled > 0  # the server did refuse: the run waited instead of failing
    assert (summary.sent, summary.failed, summary.unknown) == (200, 0, 0)
    assert fake.duplicates() == {}


async def test_a_closed_port_ends_unreachable_after_the_outage_timeout() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with Dialog360Client(API_KEY, base_url=url, retry=FAST, rate_limit=None) as client:
        sender = BulkSender(client, concurrency=8, outage_timeout=0.5)
        started = time.monotonic()
        summary = await sender.send_all(_messages(500))
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0
    assert (summary.failed, summary.sent, summary.cancelled) == (500, 0, 0)
    assert [(f.status, f.reason) for f in summary.failures] == [("failed", "unreachable")]
    assert not summary.halted  # an outage is no halt: a resume sends them


async def _server_after(delay: float, port: int, fake_app: Callable[[], web.Application]) -> None:
    await asyncio.sleep(delay)
    runner = web.AppRunner(fake_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    _runners.append(runner)


_runners: list[web.AppRunner] = []


@pytest.fixture
async def late_server() -> AsyncIterator[list[web.AppRunner]]:
    yield _runners
    for runner in _runners:
        await runner.cleanup()
    _runners.clear()


async def test_a_second_of_refused_connections_fails_no_message(
    late_server: list[web.AppRunner],
) -> None:
    accepted: list[str] = []

    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        accepted.append(body["to"])
        return web.json_response({"messages": [{"id": f"wamid.{len(accepted)}"}]})

    def app() -> web.Application:
        application = web.Application()
        application.router.add_post("/messages", messages)
        return application

    port = _closed_port()
    opening = asyncio.create_task(_server_after(1.0, port, app))
    url = f"http://127.0.0.1:{port}"
    async with Dialog360Client(API_KEY, base_url=url, retry=FAST, rate_limit=None) as client:
        summary = await BulkSender(client, concurrency=32, outage_timeout=30).send_all(
            _messages(1000)
        )
    await opening
    assert (summary.sent, summary.failed, summary.unknown) == (1000, 0, 0)
    assert sorted(accepted) == sorted(m.to for m in _messages(1000))  # each exactly once
    assert summary.elapsed >= 1.0


async def test_on_premise_channels_halt_too(fake: FakeDialog360) -> None:
    async with OnPremiseClient("wrong", base_url=fake.url, retry=FAST, rate_limit=None) as c:
        summary = await BulkSender(c, concurrency=4).send_all(_messages(50))
    assert summary.sent == 0 and 1 <= summary.failed <= 4
    assert summary.cancelled == 50 - summary.failed == 50 - _answers(fake, 401)
    assert {f.reason for f in summary.failures} == {"authentication"}


def test_a_flapping_budget_warns_once_until_it_is_full_again() -> None:
    budget = RetryBudget(capacity=10, retry_cost=5, no_retry_refund=1)
    assert budget.acquire() == 5 and budget.acquire() == 5 and budget.acquire() is None
    budget.warned = True  # what the first caller to find it empty does
    budget.on_success()  # one refund: usable again, not recovered
    assert budget.warned
    budget.release(10)
    assert not budget.warned
