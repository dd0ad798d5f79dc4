"""The fake's webhook emitter: schedules statuses, batches them, POSTs and redelivers them.

360dialog's rules it plays (../shared/docs/webhooks-and-statuses.md §2.4-2.5): only an HTTP 200
within 5 s delivers a webhook; anything else is redelivered with exponential backoff; batches,
duplicates and reordering are normal. Every timer and task it makes is tracked, so `close`
leaves nothing behind, and `idle` is exact: it returns once every status scheduled so far was
answered 200 or given up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import attrs

from .._json import dumps
from ._delivery import Api, Delivery, DeliveryLog, Fates, WebhookPlan, decide
from ._payloads import SIGNATURE_HEADER, ChannelIds, Layout, cloud_body, on_prem_body, sign, status
from ._stats import WebhookCounters
from ._webhook_config import Target

__all__ = ["Emitter"]

Kind = Literal["statuses", "messages"]
_LAYOUTS: tuple[Layout, ...] = ("change", "change", "changes", "entries")


@attrs.define(eq=False)
class _Lane:
    """Statuses (or inbound messages) waiting for one POST to one channel's target."""

    target: Target
    api: Api
    kind: Kind
    ids: ChannelIds
    buffer: list[_Event] = attrs.field(factory=list)
    timer: asyncio.Handle | None = None


@attrs.define(eq=False)
class _Event:
    lane: _Lane
    item: Any
    message_id: str
    status: str
    delay: float = 0.0
    duplicate: bool = False
    flow: list[_Event] | None = None  # the statuses that follow, in order (no shuffle)
    timer: asyncio.TimerHandle | None = None


class Emitter:
    """Turns accepted sends into webhook POSTs (see `WebhookPlan` for the behaviour)."""

    def __init__(self, plan: Callable[[], WebhookPlan], secret: Callable[[], bytes | None]) -> None:
        self._plan = plan
        self._secret = secret
        self.counters = WebhookCounters()
        self.log = DeliveryLog()
        self.fates = Fates()
        self._lanes: dict[tuple[str, Api, Kind, Target], _Lane] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        self._error: Exception | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._batch_rng = random.Random()
        self._batch_rng_for: WebhookPlan | None = None

    @property
    def running(self) -> bool:
        """Between `start` and `close`."""
        return self._running

    @property
    def pending(self) -> int:
        """Statuses and messages scheduled but not yet answered 200 or given up."""
        return self._pending

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self._plan().concurrency)
        self._running = True

    async def close(self) -> None:
        """Cancel every timer and POST, close the session; pending work is dropped."""
        self._running = False
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
            lane.buffer.clear()
        self._lanes.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._pending = 0
        self._idle.set()

    async def idle(self) -> None:
        """Wait until everything scheduled was delivered (200) or given up.

        Raises:
            RuntimeError: a POST task failed unexpectedly (its statuses were given up).
        """
        await self._idle.wait()
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError("the fake's webhook emitter failed") from error

    # -- scheduling ---------------------------------------------------------------------------

    def send(
        self,
        *,
        label: str,
        serial: int,
        target: Target,
        api: Api,
        message_id: str,
        wa_id: str,
        callback_data: str | None,
        template: bool,
        in_window: bool,
    ) -> Awaitable[object] | None:
        """Plan the statuses of an accepted send; an awaitable when its first must go early."""
        if not self._running:
            return None
        plan = self._plan()
        decided = decide(self.fates, plan, wa_id, api, in_window=in_window, template=template)
        self.log.add(
            Delivery(
                message_id=message_id,
                recipient_id=wa_id,
                api=api,
                status=decided.fate,
                code=decided.code,
                statuses=decided.statuses,
                callback_data=callback_data,
            )
        )
        lane = self._lane(label, serial, target, api, "statuses")
        stamp = time.time()
        elapsed = 0.0
        events: list[_Event] = []
        for index, value in enumerate(decided.statuses):
            delay = _delay(plan, value, first=index == 0)
            stamp += delay
            elapsed += delay
            failed = value == "failed"
            item = status(
                api,
                message_id=message_id,
                value=value,
                wa_id=wa_id,
                timestamp=int(stamp),
                callback_data=None if failed and not plan.callback_on_failed else callback_data,
                code=decided.code if failed else None,
                template=template,
            )
            if plan.shuffle:  # every status on its own clock, from the send
                delay = elapsed + decided.jitter[index]
            dup = decided.duplicated[index]
            events.append(_Event(lane, item, message_id, value, delay=delay, duplicate=dup))
        self._add_pending(len(events))
        first = events[0]
        if plan.shuffle:
            for event in events[1:]:
                self._schedule(event)
        else:
            first.flow = events[1:]
        if decided.early:
            self.counters.early += 1
            return self._post([first]).wait()
        self._schedule(first)
        return None

    def message(
        self, *, label: str, serial: int, target: Target, api: Api, item: Any, message_id: str
    ) -> None:
        """Post one inbound message (``item`` = ``(contact, message)``)."""
        if not self._running:
            return
        self._add_pending(1)
        lane = self._lane(label, serial, target, api, "messages")
        self._offer(_Event(lane, item, message_id, ""))

    def _lane(self, label: str, serial: int, target: Target, api: Api, kind: Kind) -> _Lane:
        key = (label, api, kind, target)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(target, api, kind, ChannelIds(serial))
        return lane

    def _add_pending(self, count: int) -> None:
        self._pending += count
        self._idle.clear()

    def _schedule(self, event: _Event) -> None:
        if event.delay <= 0.0:
            self._offer(event)
            return
        loop = asyncio.get_running_loop()
        event.timer = loop.call_later(event.delay, self._due, event)
        self._timers.add(event.timer)

    def _due(self, event: _Event) -> None:
        if event.timer is not None:
            self._timers.discard(event.timer)
            event.timer = None
        self._offer(event)

    def _offer(self, event: _Event) -> None:
        lane = event.lane
        lane.buffer.append(event)
        plan = self._plan()
        if len(lane.buffer) >= plan.max_batch:
            self._flush(lane)
        elif lane.timer is None:
            loop = asyncio.get_running_loop()
            if plan.linger > 0:
                lane.timer = loop.call_later(plan.linger, self._flush, lane)
            else:
                lane.timer = loop.call_soon(self._flush, lane)

    def _flush(self, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        events, lane.buffer = lane.buffer, []
        size = self._plan().max_batch
        for start in range(0, len(events), size):
            self._post(events[start : start + size])

    # -- posting ------------------------------------------------------------------------------

    def _post(self, events: list[_Event]) -> asyncio.Event:
        """Start a task POSTing ``events`` as one body; the event is set after its first try."""
        tried = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._deliver(events, tried))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return tried

    def _rng(self, plan: WebhookPlan) -> random.Random:
        if plan is not self._batch_rng_for:
            self._batch_rng = random.Random(None if plan.seed is None else plan.seed + 1)
            self._batch_rng_for = plan
        return self._batch_rng

    async def _deliver(self, events: list[_Event], tried: asyncio.Event) -> None:
        plan = self._plan()
        lane = events[0].lane
        delivered = False
        try:
            rng = self._rng(plan)
            if plan.shuffle:
                rng.shuffle(events)
            items = [event.item for event in events]
            if lane.api == "cloud":
                layout = rng.choice(_LAYOUTS) if len(items) > 1 else "change"
                payload = cloud_body(lane.ids, lane.kind, items, layout)
            else:
                payload = on_prem_body(lane.kind, items)
            body = dumps(payload)
            headers = {"Content-Type": "application/json", **dict(lane.target.headers)}
            secret = self._secret()
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign(secret, body, plan.signature_prefix)
            for attempt in range(plan.attempts):
                if attempt:
                    self.counters.redeliveries += 1
                    await plan.sleep(min(plan.backoff * 2 ** (attempt - 1), plan.max_backoff))
                assert self._slots is not None
                async with self._slots:
                    delivered = await self._attempt(lane.target, body, headers, plan.timeout)
                tried.set()
                if delivered:
                    break
            else:
                self._give_up(events)
        except Exception as err:  # a bug, or an injected sleep that raised: idle() re-raises it
            self._error = self._error or err
            self._give_up(events)
        finally:
            tried.set()
        for event in events:
            self._final(event, delivered)

    def _give_up(self, events: list[_Event]) -> None:
        self.counters.gave_up += 1
        for event in events:
            if event.status:
                self.log.lose(event.message_id, event.status)

    async def _attempt(
        self, target: Target, body: bytes, headers: dict[str, str], seconds: float
    ) -> bool:
        if not target.loopback:  # never reached: targets are checked when a send is planned
            raise RuntimeError("the fake only POSTs webhooks to loopback URLs")
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(trust_env=False)
        self.counters.posts += 1
        try:
            async with asyncio.timeout(seconds):
                async with session.post(
                    target.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    answered = response.status
        except TimeoutError:
            self.counters.timeouts += 1
            answered = 0
        except (aiohttp.ClientError, OSError):
            answered = 0
        if answered == 200:
            self.counters.delivered += 1
            return True
        self.counters.failed_attempts += 1
        return False

    def _final(self, event: _Event, delivered: bool) -> None:
        """One status left the emitter: count it, maybe duplicate it, release the next one."""
        if delivered:
            if event.status:
                self.counters.statuses += 1
            else:
                self.counters.messages += 1
        if self._running:
            if event.duplicate:
                self.counters.duplicates += 1
                self._add_pending(1)
                self._offer(_Event(event.lane, event.item, event.message_id, event.status))
            if event.flow:
                following, *rest = event.flow
                following.flow = rest
                self._schedule(following)
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()


def _delay(plan: WebhookPlan, value: str, *, first: bool) -> float:
    if first:
        return plan.sent_delay
    return plan.read_delay if value == "read" else plan.delivered_delay
