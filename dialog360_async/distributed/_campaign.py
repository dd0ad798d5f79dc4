"""A campaign's progress, read from Redis by anyone: the producer, a CLI, a reattached producer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import attrs
from redis.asyncio import Redis

from ._config import DEFAULT_REDIS_URL
from ._errors import CampaignLostError, CampaignStalledError
from ._keys import PREFIX, CampaignKeys
from ._redis import OUTAGE_TIMEOUT, connect, reach, retrying

__all__ = [
    "CampaignSummary",
    "campaign_status",
    "list_campaigns",
    "read_status",
    "wait_campaign",
]

STATUSES = ("sent", "failed", "unknown", "cancelled", "attempting")
DELIVERY = ("delivered", "read", "undelivered", "unknown_settled")


@attrs.frozen(kw_only=True)
class CampaignSummary:
    """The account of a campaign: one outcome per message key, counted from the ledger.

    ``in_flight`` messages are claimed by a worker and not settled yet; ``pending`` ones are
    enqueued and not claimed yet. When ``finished``, ``sent + failed + unknown + cancelled``
    is the number of distinct message keys.
    """

    campaign_id: str
    state: str
    """``running``, ``finished`` or ``missing`` (not in Redis: unknown id or lost state)."""
    messages: int
    batches: int
    batches_done: int
    sent: int
    failed: int
    unknown: int
    cancelled: int
    in_flight: int
    pending: int
    elapsed: float
    channels: dict[str, dict[str, int]] = attrs.field(factory=dict)
    errors: dict[str, str] = attrs.field(factory=dict)
    halted: dict[str, str] = attrs.field(factory=dict)
    """Channels halted by the spam limit, with the reason."""
    delivered: int = 0
    """Messages that reached WhatsApp (sent, or unknown settled) and have a ``delivered`` (or
    later) status webhook recorded by a :class:`RedisStore`; ``read`` likewise."""
    read: int = 0
    undelivered: int = 0
    """Messages that reached WhatsApp with a ``failed`` status: counts by code in
    ``undelivered_codes`` (``"none"``: a failure without one)."""
    undelivered_codes: dict[str, int] = attrs.field(factory=dict)
    unknown_settled: int = 0
    """``unknown`` sends a status webhook of their own showed to have reached WhatsApp."""

    @property
    def finished(self) -> bool:
        """True when every batch has been run."""
        return self.state == "finished"

    @property
    def ok(self) -> bool:
        """True when finished and every message was sent."""
        return self.finished and self.sent == self.messages

    @property
    def rate(self) -> float:
        """Messages sent per second since the campaign started."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> CampaignSummary:
        """Build from :func:`campaign_status`'s dict."""
        return cls(**{field.name: status[field.name] for field in attrs.fields(cls)})

    def __str__(self) -> str:
        lines = [
            f"campaign:  {self.campaign_id} ({self.state})",
            f"messages:  {self.messages} in {self.batches} batches ({self.batches_done} done)",
            f"sent:      {self.sent}",
            f"failed:    {self.failed}",
            f"unknown:   {self.unknown}",
            f"cancelled: {self.cancelled}",
            f"delivered: {self.delivered} (read {self.read})",
            f"undelivered: {self.undelivered}{_by_code(self.undelivered_codes)}",
            f"unknown settled by a status: {self.unknown_settled}",
            f"in flight: {self.in_flight}",
            f"pending:   {self.pending}",
            f"elapsed:   {self.elapsed:.1f} s",
            f"rate:      {self.rate:.1f} msg/s",
        ]
        lines += [f"error:     {name}: {text}" for name, text in sorted(self.errors.items())]
        lines += [f"halted:    {name}: {text}" for name, text in sorted(self.halted.items())]
        return "\n".join(lines)


def _by_code(codes: dict[str, int]) -> str:
    if not codes:
        return ""
    return " (" + ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())) + ")"


def _url(redis_url: str | None) -> str:
    return redis_url or os.environ.get("D360_REDIS_URL", "").strip() or DEFAULT_REDIS_URL


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


async def read_status(redis: Redis, campaign_id: str) -> dict[str, Any]:
    """:func:`campaign_status` over an existing client."""
    keys = CampaignKeys(campaign_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.meta)
        pipe.hgetall(keys.counts)
        meta_raw, counts_raw = await pipe.execute()
    meta = {_s(k): _s(v) for k, v in meta_raw.items()}
    counts: dict[str, int] = {}
    channels: dict[str, dict[str, int]] = {}
    codes: dict[str, int] = {}
    for field, value in counts_raw.items():
        status, _, channel = _s(field).partition(":")
        if channel:
            channels.setdefault(channel, {})[status] = _int(_s(value))
        elif status.startswith("undelivered#"):
            if number := _int(_s(value)):
                codes[status.partition("#")[2] or "none"] = number
        else:
            counts[status] = _int(_s(value))
    messages = _int(meta.get("messages"))
    batches, done = _int(meta.get("batches")), _int(meta.get("batches_done"))
    if not meta:
        state = "missing"
    elif meta.get("input_done") == "1" and done >= batches:
        state = "finished"
    else:
        state = "running"
    created = float(meta.get("created") or 0.0)
    end = float(meta.get("finished") or 0.0) or time.time()
    settled = sum(counts.get(status, 0) for status in STATUSES)
    return {
        "campaign_id": campaign_id,
        "state": state,
        "input_done": meta.get("input_done") == "1",
        "messages": messages,
        "batches": batches,
        "batches_done": done,
        **{status: counts.get(status, 0) for status in STATUSES[:4]},
        "in_flight": counts.get("attempting", 0),
        "pending": max(0, messages - settled) if state != "finished" else 0,
        "created": created,
        "elapsed": max(0.0, end - created) if created else 0.0,
        "channels": {name: {k: v for k, v in c.items() if v} for name, c in channels.items()},
        "errors": {k.partition(":")[2]: v for k, v in meta.items() if k.startswith("error:")},
        "halted": {k.partition(":")[2]: v for k, v in meta.items() if k.startswith("halted:")},
        **{name: counts.get(name, 0) for name in DELIVERY},
        "undelivered_codes": codes,
    }


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def campaign_status(campaign_id: str, redis_url: str | None = None) -> dict[str, Any]:
    """A campaign's progress and results, read from Redis (JSON-ready).

    Keys: ``campaign_id``; ``state`` (``running``, ``finished``, ``missing``); ``messages``,
    ``batches``, ``batches_done``; ``sent``, ``failed``, ``unknown``, ``cancelled``,
    ``in_flight``, ``pending``; ``elapsed`` seconds; ``channels`` (name -> counts per state,
    and per delivery count); ``errors`` and ``halted`` (channel -> reason). Delivery, as
    status webhooks recorded by a :class:`RedisStore` tell it: ``delivered``, ``read``,
    ``undelivered`` (by code in ``undelivered_codes``, ``"none"`` for a failure without one)
    and ``unknown_settled`` (see :class:`CampaignSummary`).

    Args:
        campaign_id: the id ``broadcast`` printed or returned.
        redis_url: the shared Redis (default ``$D360_REDIS_URL``, else local).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    url = _url(redis_url)
    redis = connect(url)
    try:
        await reach(redis, url)
        return await retrying(lambda: read_status(redis, campaign_id), what="reading status")
    finally:
        await redis.aclose()


async def list_campaigns(redis_url: str | None = None, *, limit: int = 100) -> list[str]:
    """Ids of the campaigns in Redis (at most ``limit``), newest first."""
    url = _url(redis_url)
    redis = connect(url)

    async def scan() -> list[tuple[float, str]]:
        found: list[tuple[float, str]] = []
        async for key in redis.scan_iter(match=f"{PREFIX}:campaign:*:meta", count=500):
            campaign = _s(key).split(":")[2]
            created = await redis.hget(_s(key), "created")
            found.append((float(created or 0), campaign))
            if len(found) >= 10 * limit:
                break
        return found

    try:
        await reach(redis, url)
        found = await retrying(scan, what="listing campaigns")
        return [campaign for _, campaign in sorted(found, reverse=True)[:limit]]
    finally:
        await redis.aclose()


async def watch(
    redis: Redis,
    campaign_id: str,
    *,
    poll: float = 0.5,
    stall_timeout: float = 600.0,
    on_progress: Callable[[CampaignSummary], None] | None = None,
    outage: float = OUTAGE_TIMEOUT,
) -> CampaignSummary:
    """Poll until the campaign is finished (see :func:`wait_campaign`)."""
    last: tuple[int, ...] | None = None
    moved = time.monotonic()
    while True:
        status = await retrying(lambda: read_status(redis, campaign_id), what="reading status")
        if status["state"] == "missing":
            raise CampaignLostError(
                f"campaign {campaign_id} is not in Redis (restarted without persistence, flushed "
                "or expired?): messages may have been sent; check before running it again"
            )
        summary = CampaignSummary.from_status(status)
        if on_progress is not None:
            on_progress(summary)
        if summary.finished:
            return summary
        progress = (summary.batches, summary.batches_done, summary.messages - summary.pending)
        now = time.monotonic()
        if progress != last:
            last, moved = progress, now
        elif now - moved > stall_timeout:
            raise CampaignStalledError(
                f"campaign {campaign_id} made no progress for {stall_timeout:g} s "
                f"({summary.pending} pending, {summary.in_flight} in flight): are workers running "
                "(taskiq worker dialog360_async.distributed:broker) with its channels configured?"
            )
        await asyncio.sleep(poll)


async def wait_campaign(
    campaign_id: str,
    redis_url: str | None = None,
    *,
    poll: float = 0.5,
    stall_timeout: float = 600.0,
    on_progress: Callable[[CampaignSummary], None] | None = None,
) -> CampaignSummary:
    """Wait for a campaign to finish, e.g. after its producer crashed; return its summary.

    Raises:
        CampaignLostError: the campaign is not (or no longer) in Redis.
        CampaignStalledError: nothing moved for ``stall_timeout`` seconds.
    """
    url = _url(redis_url)
    redis = connect(url)
    try:
        await reach(redis, url)
        return await watch(
            redis, campaign_id, poll=poll, stall_timeout=stall_timeout, on_progress=on_progress
        )
    finally:
        await redis.aclose()
