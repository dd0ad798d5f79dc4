"""On-Premise per-user loops (block, unblock) stop at the first error that will fail every later
request too, and raise it; per-user failures still land in ``BlockResult.failed``.

Counted at the bundled fake: what matters is how many requests reached the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dialog360_async import OnPremiseClient
from dialog360_async.errors import (
    APIError,
    AuthenticationError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

USERS = [f"+1650{n:07d}" for n in range(200)]
OK = FakeResponse(status=200, json={"meta": {"api_status": "stable", "version": "2.x"}})

Loop = Callable[[OnPremiseClient, list[str]], Awaitable[Any]]
LOOPS: dict[str, tuple[str, Loop]] = {
    "block": ("/v1/contacts/{phone}/block", lambda c, users: c.block_users(users, reason="spam")),
    "unblock": ("/v1/contacts/{phone}/unblock", lambda c, users: c.unblock_users(users)),
}


def _errors(code: int, title: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "title": title, "details": details}]}


def _gateway(status: int, message: str) -> dict[str, Any]:
    return {"meta": {"httpCode": status, "developerMessage": message, "success": False}}


def _sent(fake: FakeDialog360, kind: str) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(f"/{kind}"))


FATAL = [
    (FakeResponse(status=401, json=_gateway(401, "Invalid api key")), AuthenticationError),
    (
        FakeResponse(status=403, json=_gateway(403, "The endpoint is blocked")),
        PermissionDeniedError,
    ),
    (
        FakeResponse(
            status=400, json=_gateway(400, "Your WhatsApp for Business API has been disabled")
        ),
        APIError,
    ),
    (FakeResponse(status=400, json=_errors(131031, "Business Account locked")), APIError),
    (FakeResponse(status=429, json=_errors(130429, "Rate limit hit")), RateLimitError),
    (FakeResponse(status=503), ServerError),
    (FakeResponse(close=True), TransportError),
]


@pytest.mark.parametrize("kind", sorted(LOOPS))
async def test_401_on_the_third_stops_at_three_requests(
    fake: FakeDialog360, onprem: OnPremiseClient, kind: str
) -> None:
    path, loop = LOOPS[kind]
    denied = FakeResponse(status=401, json=_gateway(401, "Invalid api key"))
    fake.script("POST", path, OK, OK, denied)
    with pytest.raises(AuthenticationError) as info:
        await loop(onprem, USERS)
    assert info.value.status == 401
    assert _sent(fake, kind) == 3
    # The first two reached the server in order; nothing after the 401 did.
    assert [r.path.split("/")[3] for r in fake.requests] == USERS[:3]


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize(("answer", "raised"), FATAL, ids=lambda x: getattr(x, "status", ""))
async def test_every_channel_wide_error_stops_the_loop(
    fake: FakeDialog360,
    onprem: OnPremiseClient,
    kind: str,
    answer: FakeResponse,
    raised: type[Exception],
) -> None:
    path, loop = LOOPS[kind]
    fake.script("POST", path, OK, answer)
    with pytest.raises(raised):
        await loop(onprem, USERS[:50])
    assert _sent(fake, kind) == 2


async def test_with_retries_the_loop_still_stops(fake: FakeDialog360) -> None:
    # The default policy retries 429s; once they are spent the loop stops, it does not go on.
    from dialog360_async import RetryPolicy

    async def no_sleep(_: float) -> None:
        pass

    throttled = FakeResponse(status=429, json=_errors(130429, "Rate limit hit"))
    fake.script("POST", "/v1/contacts/{phone}/block", OK, *[throttled] * 3)
    policy = RetryPolicy(max_attempts=3, sleep=no_sleep)
    async with OnPremiseClient(
        "k3y-s3cr3t-0123456789abcdef", base_url=fake.url, retry=policy
    ) as client:
        with pytest.raises(RateLimitError):
            await client.block_users(USERS[:50])
    assert _sent(fake, "block") == 1 + 3


@pytest.mark.parametrize("kind", sorted(LOOPS))
async def test_per_user_failures_do_not_stop_the_loop(
    fake: FakeDialog360, onprem: OnPremiseClient, kind: str
) -> None:
    path, loop = LOOPS[kind]
    not_engaged = FakeResponse(
        status=400, json=_errors(2048, "Not engaged contact", "has not engaged in 24 hrs")
    )
    invalid = FakeResponse(status=400, json=_errors(1009, "Parameter value is not valid"))
    fake.script("POST", path, OK, OK, not_engaged, OK, invalid)
    fake.engage(*USERS)
    result = await loop(onprem, USERS[:40])
    assert _sent(fake, kind) == 40
    assert [(f.input, f.errors[0].code) for f in result.failed] == [
        (USERS[2], 2048),
        (USERS[4], 1009),
    ]
    done = result.added if kind == "block" else result.removed
    assert [u.input for u in done] == [u for i, u in enumerate(USERS[:40]) if i not in (2, 4)]
