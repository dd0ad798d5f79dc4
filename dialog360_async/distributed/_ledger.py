"""RedisLedger: the bulk sender's at-most-once record, shared by every worker of a campaign.

Claims are script calls, many keys at once: a key nobody holds (or whose last attempt failed
or was never made) becomes ``attempting`` under this claim's owner token; a key already
``sent`` or ``unknown`` is refused; a key left ``attempting`` by another claim (a dead worker,
or one still running when its batch was delivered again) turns ``unknown`` and is refused.
Only the owner of a claim can settle it, so a worker presumed dead that settles later still
records the truth.

The claims and the outcomes asked for while one script call is in flight go together in the
next one (``_batching``), outcomes first: one round trip serves many messages. A paced claim
takes its rate permit in the same script, and only once the ledger allows the send.

For delivery truth (``RedisStore``) the claim records the key's callback tag and a ``sent``
settle its message id, so that a status webhook finds its message either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis

from .._journal import State
from .._json import dumps, loads
from . import _lua
from ._batching import Coalescer
from ._keys import CAMPAIGN_TTL, CampaignKeys, callback_tag, wamid_key
from ._limiter import RedisRateLimiter
from ._redis import OUTAGE_TIMEOUT, Outage, retrying

__all__ = ["RedisLedger"]

logger = logging.getLogger("dialog360_async.distributed")

# Keys per script call: the larger a group, the fewer round trips, up to Lua's argument limits.
GROUP = 256

_Record = tuple[str, str, State, str, str]  # key, owner token, state, message id, code
_Claim = tuple[str, str, str, bool]  # key, owner token, tag digest, paid
_Call = _Claim | _Record
_WAMID_PREFIX = wamid_key("")  # the script names a message id's hash from it


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
        pace: the channel's limiter, to take each send's permit as it is claimed (the send's
            ``acquire`` then uses it), never before the permit is due, so that a crash leaves
            in doubt only the sends in flight, not those waiting for the rate.
        outage: seconds to keep retrying while Redis is unreachable, or a function giving
            them, asked at each retry (a stopping worker's gives 0).
        sleep: waits for a permit that is not due yet.
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
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.keys = CampaignKeys(campaign)
        self.channel = channel
        self.owner = owner or uuid.uuid4().hex[:12]
        self._outage = outage
        self._pace = pace
        self._sleep = sleep
        self._redis = redis
        self._script = redis.register_script(_lua.LEDGER)
        self._serial = 0
        self._tokens: dict[str, str] = {}
        self._unsettled: list[_Record] = []
        # Outcomes handed to the script calls, and those whose call is over: calls end in the
        # order they were asked for, so a flush waits for `ended` to reach `posted` as it was.
        self._posted = self._ended = 0
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._calls: Coalescer[_Call, object] = Coalescer(self._call_many, GROUP)
        self._owns_calls = True
        self._tags: dict[str, str] = {}

    def fork(self, owner: str) -> RedisLedger:
        """A ledger of the same campaign and channel under another owner whose claims and
        outcomes go to Redis in the same script calls as this one's (one worker's batches of
        a channel at once: more messages per round trip)."""
        other = RedisLedger(
            self._redis,
            self.keys.id,
            self.channel,
            owner=owner,
            pace=self._pace,
            outage=self._outage,
            sleep=self._sleep,
        )
        other._calls, other._owns_calls = self._calls, False
        return other

    async def claim(self, key: str) -> str | None:
        """Claim ``key`` for one send attempt (see :class:`~dialog360_async.Ledger`).

        Claims made at the same time go to Redis together, each with its rate permit; a key
        the ledger refuses takes no permit, and no claim is held while its permit is not due.
        """
        self._serial += 1
        token = f"{self.owner}/{self._serial}"  # the same token on a retry: see CLAIM
        digest = self.callback_for(key).rpartition(":")[2]
        paid = False
        while True:
            try:
                verdict = cast(str, await self._calls.post((key, token, digest, paid)))
            except asyncio.CancelledError:
                # The claim may have been made with nobody left to hear it (a stopping
                # worker): close() frees it, or it would turn `unknown` though never sent.
                self._unsettled.append((key, token, "cancelled", "", ""))
                raise
            if not verdict:
                self._tokens[key] = token
                if self._pace is not None:
                    self._pace.paid()
                return None
            kind, _, wait = verdict.partition(":")
            if kind not in ("w", "l"):
                return verdict
            paid = kind == "w"  # "w": our permit is reserved; "l": behind the one that is
            await self._sleep(float(wait))

    async def _call_many(self, items: list[_Call]) -> list[object]:
        """One script call for the claims and outcomes asked for meanwhile (outcomes first)."""
        claims = [item for item in items if len(item) == 4]
        records = [item for item in items if len(item) == 5]
        replies = await self._call(claims, records)
        rate = replies[-1]
        if self._pace is not None and rate:
            self._pace.note_rate(float(cast(str, rate)))
        results, verdicts = iter(replies[: len(records)]), iter(replies[len(records) : -1])
        return [next(verdicts) if len(item) == 4 else next(results) for item in items]

    async def _call(self, claims: list[_Claim], records: list[_Record]) -> list[object]:
        keys = [self.keys.ledger, self.keys.counts, self.keys.meta, self.keys.tags]
        args: list[str | int | bytes] = [self.channel, f"{time.time():.3f}", CAMPAIGN_TTL]
        args += [f"{self.keys.id}:", _WAMID_PREFIX]
        pace = self._pace
        if pace is None or not claims:
            args += ["", "", "", ""]
        else:
            bucket, bucket_args = pace.bucket()
            keys.append(bucket)
            args += bucket_args
        args += [dumps(records), dumps(claims)]

        async def call() -> object:
            return await self._script(keys=keys, args=args)

        what = "claiming messages" if claims else "recording outcomes"
        reply = await retrying(call, what=what, outage=self._outage)
        replies: list[object] = loads(cast(str | bytes, reply))
        return replies

    def callback_for(self, key: str) -> str:
        """The callback tag a Cloud send of ``key`` carries (recorded by its claim): its status
        webhooks name the key even if the send's answer, and its message id, were lost."""
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = callback_tag(self.keys.id, key)
        return tag

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of a claimed key with the next script call; never raises.

        It returns at once, so that the sender's slot moves on to its next message instead
        of waiting a round trip: :meth:`flush` waits until the outcomes are in Redis, and
        :meth:`close` also retries those that failed (unrecorded, a key stays in doubt). A
        crash meanwhile leaves the key as one during the round trip would: ``attempting``,
        so never sent again.
        """
        token = self._tokens.pop(key, None)
        self._tags.pop(key, None)
        if token is None:
            return
        record = (key, token, state, message_id or "", "" if code is None else str(code))
        self._posted += 1
        self._calls.put(record, self._settled)

    def _settled(self, call: _Call, error: BaseException | None) -> None:
        self._ended += 1
        record = cast(_Record, call)  # put() by settle(): an outcome
        if isinstance(error, asyncio.CancelledError):
            self._unsettled.append(record)  # it may not have reached Redis
        elif error is not None:
            # The message keeps its `attempting` record: a later claim reports it unknown,
            # which is the truth as far as anyone can know. close() tries once more.
            logger.warning("could not record the outcome of %s yet: %s", record[0], error)
            self._unsettled.append(record)
        while self._flushes and self._flushes[0][0] <= self._ended:
            _, flushed = self._flushes.pop(0)
            if not flushed.done():
                flushed.set_result(None)

    async def flush(self) -> None:
        """Wait until every outcome settled so far has been through its script call."""
        if self._ended < self._posted:
            flushed = asyncio.get_running_loop().create_future()
            self._flushes.append((self._posted, flushed))
            # wait(), not awaiting it: a flush cut short leaves the outcomes to go on their own.
            await asyncio.wait((flushed,))

    async def close(self) -> None:
        """Wait for the outcomes on their way to Redis; retry those that could not be
        recorded (and free claims cut short); log those that still cannot be."""
        await self.flush()
        if self._owns_calls:
            await self._calls.aclose()
        pending, self._unsettled = self._unsettled, []
        if not pending:
            return
        try:
            await self._call([], pending)
        except Exception as exc:
            for record in pending:
                logger.error("outcome of %s (%s) not recorded: %s", record[0], record[2], exc)
