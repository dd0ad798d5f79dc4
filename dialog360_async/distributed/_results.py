"""Per-message results of a campaign, read back from its ledger in Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
from redis.asyncio import Redis

from ._campaign import _url
from ._keys import CampaignKeys
from ._redis import connect, reach, retrying

__all__ = ["MessageResult", "campaign_results"]

_CHUNK = 500


@attrs.frozen(kw_only=True)
class MessageResult:
    """What the ledger holds for one message key of a campaign.

    ``status`` is ``sent``, ``failed``, ``unknown`` (it may have been delivered: never resent)
    or ``cancelled`` (not sent: its channel was halted, or no worker ever attempted it). A
    claim that was never settled (its worker died) counts as ``unknown``.
    """

    key: str
    status: str
    channel: str | None = None
    message_id: str | None = None
    code: int | None = None


def _result(key: str, raw: Any) -> MessageResult:
    if raw is None:
        return MessageResult(key=key, status="cancelled")
    entry = json.loads(raw)
    status = entry.get("s")
    code = entry.get("code")
    return MessageResult(
        key=key,
        status="unknown" if status == "attempting" else str(status),
        channel=entry.get("c"),
        message_id=entry.get("id") or None,
        code=code if isinstance(code, int) else None,
    )


async def read_results(
    redis: Redis, campaign_id: str, keys: Iterable[str]
) -> AsyncIterator[MessageResult]:
    """:func:`campaign_results` over an existing client."""
    ledger = CampaignKeys(campaign_id).ledger
    chunk: list[str] = []
    iterator = iter(keys)
    while True:
        chunk.clear()
        for key in iterator:
            chunk.append(key)
            if len(chunk) == _CHUNK:
                break
        if not chunk:
            return
        found = await retrying(lambda: redis.hmget(ledger, chunk), what="reading results")
        for key, raw in zip(chunk, found, strict=True):
            yield _result(key, raw)


async def campaign_results(
    campaign_id: str, keys: Iterable[str], redis_url: str | None = None
) -> AsyncIterator[MessageResult]:
    """The result of each of ``keys`` (the campaign's message keys), in their order.

    Memory stays flat: the keys are read and looked up a few hundred at a time.

    Args:
        campaign_id: the campaign's id.
        keys: the message keys, e.g. from the input the campaign was sent from.
        redis_url: the shared Redis (default ``$D360_REDIS_URL``, else local).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    url = _url(redis_url)
    redis = connect(url)
    try:
        await reach(redis, url)
        async for result in read_results(redis, campaign_id, keys):
            yield result
    finally:
        await redis.aclose()
