"""RedisLedger: the bulk sender's at-most-once record, shared by every worker of a campaign.

A claim is one script call: a key nobody holds (or whose last attempt failed or was never made)
becomes ``attempting`` under this claim's owner token; a key already ``sent`` or ``unknown`` is
refused; a key left ``attempting`` by another claim (a dead worker, or one still running when
its batch was delivered again) turns ``unknown`` and is refused. Only the owner of a claim can
settle it, so a worker presumed dead that settles later still records the truth.

For delivery truth (``RedisStore``) the claim records the key's callback tag and a ``sent``
settle its message id, so that a status webhook finds its message either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable

from redis.asyncio import Redis

from .._journal import State
from . import _lua
from ._keys import CAMPAIGN_TTL, CampaignKeys, callback_tag, wamid_key
from ._limiter import RedisRateLimiter
from ._redis import OUTAGE_TIMEOUT, Outage, retrying

__all__ = ["RedisLedger"]

logger = logging.getLogger("dialog360_async.distributed")

# States a claim refuses (an `attempting` of another owner turns `unknown`): see CLAIM.
_REFUSED = frozenset({"sent", "unknown", "attempting"})


class RedisLedger:
    """The :class:`~dialog360_async.Ledger` of one channel's share of a campaign, in Redis.

    Pass it as ``BulkSender(journal=...)``. The campaign must exist (``broadcast`` creates it);
    if its state vanishes from Redis, claims fail with :class:`CampaignLostError` and nothing
    more is sent.

    Args:
        redis: the shared Redis (a client with or without ``decode_responses``).
        campaign: the campaign id.
        channel: the channel these messages go through (for per-channel counts).
        owner: a name for this claimant in the records (default: a random one).
        pace: the channel's limiter, to take each send's permit before claiming it (see
            :meth:`RedisRateLimiter.prepay`), so that a crash leaves in doubt only the sends
            in flight, not those waiting for the rate.
        outage: seconds to keep retrying while Redis is unreachable, or a function giving
            them, asked at each retry (a stopping worker's gives 0).
    """

    def __init__(
        self,
        redis: Redis,
        campaign: str,
        channel: str,
        *,
        owner: str | None = None,
        pace: RedisRateLimiter | None = None,
        outage: Outage = OUTAGE_TIMEOUT,
    ) -> None:
        self.keys = CampaignKeys(campaign)
        self.channel = channel
        self.owner = owner or uuid.uuid4().hex[:12]
        self._outage = outage
        self._pace = pace
        self._redis = redis
        self._claim = redis.register_script(_lua.CLAIM)
        self._settle = redis.register_script(_lua.SETTLE)
        self._serial = 0
        self._tokens: dict[str, str] = {}
        self._unsettled: list[tuple[str, str, State, str, str]] = []
        self._refused: set[str] = set()

    async def prefetch(self, keys: Iterable[str]) -> None:
        """Read the states of ``keys`` in one call before sending them.

        A key found sent, in doubt or claimed by someone else will be refused, so its
        :meth:`claim` takes no rate permit: a batch taken over from a dead worker does not
        spend the channel's rate on the messages that worker already sent.
        """
        wanted = list(keys)
        if not wanted:
            return
        found = await self._redis.hmget(self.keys.ledger, wanted)
        self._refused = {
            key
            for key, raw in zip(wanted, found, strict=True)
            if raw is not None and json.loads(raw).get("s") in _REFUSED
        }

    async def claim(self, key: str) -> str | None:
        """Claim ``key`` for one send attempt (see :class:`~dialog360_async.Ledger`)."""
        pace = self._pace
        # A claim is made after its permit, never held while waiting for one (see `pace`),
        # and a key prefetch() found refused takes none.
        unpaid = key in self._refused
        if pace is not None and not unpaid:
            await pace.prepay()
        self._serial += 1
        token = f"{self.owner}/{self._serial}"  # the same token on a retry: see CLAIM
        keys = [self.keys.ledger, self.keys.counts, self.keys.meta, self.keys.tags]
        digest = self.callback_for(key).rpartition(":")[2]
        args: list[str | int] = [
            key,
            token,
            self.channel,
            f"{time.time():.3f}",
            digest,
            CAMPAIGN_TTL,
        ]

        async def call() -> object:
            return await self._claim(keys=keys, args=args)

        try:
            prior = await retrying(call, what="claiming a message", outage=self._outage)
            if prior is None and pace is not None and unpaid:
                await pace.prepay()  # it was settled free since prefetch(): pay now
        except asyncio.CancelledError:
            # The claim may have been made with nobody left to hear it (a stopping worker):
            # close() frees it, or it would turn `unknown` though it was never sent.
            self._unsettled.append((key, token, "cancelled", "", ""))
            raise
        if prior is None:
            self._tokens[key] = token
            return None
        return prior.decode() if isinstance(prior, bytes) else str(prior)

    def callback_for(self, key: str) -> str:
        """The callback tag a Cloud send of ``key`` carries (recorded by its claim): its status
        webhooks name the key even if the send's answer, and its message id, were lost."""
        return callback_tag(self.keys.id, key)

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of a claimed key; never raises (unrecorded, it stays in doubt)."""
        token = self._tokens.pop(key, None)
        if token is None:
            return
        record = (key, token, state, message_id or "", "" if code is None else str(code))
        try:
            await self._write(record)
        except Exception as exc:
            # The message keeps its `attempting` record: a later claim reports it unknown,
            # which is the truth as far as anyone can know. close() tries once more.
            logger.warning("could not record the outcome of %s yet: %s", key, exc)
            self._unsettled.append(record)

    async def _write(self, record: tuple[str, str, State, str, str]) -> None:
        key, token, state, message_id, code = record
        keys = [self.keys.ledger, self.keys.counts]
        args: list[str | int] = [key, token, state, message_id, code, f"{time.time():.3f}"]
        if state == "sent" and message_id:
            keys.append(wamid_key(message_id))
            args += [f"{self.keys.id}:{key}", CAMPAIGN_TTL]

        async def call() -> object:
            return await self._settle(keys=keys, args=args)

        await retrying(call, what="recording an outcome", outage=self._outage)

    async def close(self) -> None:
        """Retry the outcomes that could not be recorded (and free claims cut short); log
        those that still cannot be."""
        pending, self._unsettled = self._unsettled, []
        for record in pending:
            try:
                await self._write(record)
            except Exception as exc:
                logger.error("outcome of %s (%s) not recorded: %s", record[0], record[2], exc)
