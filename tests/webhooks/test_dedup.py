"""MemoryWebhookStore: 7 days of keys, a size bound, atomic per key."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dialog360_async.errors import ValidationError
from dialog360_async.webhooks import (
    DEDUP_TTL,
    InboundMessage,
    MemoryWebhookStore,
    Notification,
    StatusUpdate,
    WebhookStore,
)


def _status(message_id: str, value: str = "sent") -> StatusUpdate:
    return StatusUpdate(message_id=message_id, status=value, timestamp=1)


def _note(*statuses: StatusUpdate, messages: tuple[InboundMessage, ...] = ()) -> Notification:
    return Notification(statuses=statuses, messages=messages)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_is_a_webhook_store() -> None:
    assert isinstance(MemoryWebhookStore(), WebhookStore)


async def test_new_keys_pass_seen_keys_do_not() -> None:
    store = MemoryWebhookStore()
    first = _note(_status("w1"), _status("w1", "delivered"), _status("w1"))
    assert (await store.record_webhook(first)).statuses == (
        _status("w1"),
        _status("w1", "delivered"),
    )
    inbound = InboundMessage(message_id="w1", wa_id="49", type="text", timestamp=1)
    again = _note(_status("w1"), _status("w2"), messages=(inbound,))
    fresh = await store.record_webhook(again)
    # An inbound message and a status never share a key, even with one id.
    assert (fresh.statuses, fresh.messages) == ((_status("w2"),), (inbound,))
    assert len(store) == 4


async def test_a_notification_with_nothing_seen_comes_back_unchanged() -> None:
    note = _note(_status("w1"), _status("w2"))
    assert await MemoryWebhookStore().record_webhook(note) is note


async def test_keys_are_forgotten_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryWebhookStore(clock=clock)
    assert DEDUP_TTL == 7 * 24 * 3600
    await store.record_webhook(_note(_status("w1")))
    clock.now += DEDUP_TTL - 1
    assert (await store.record_webhook(_note(_status("w1"), _status("w2")))).statuses == (
        _status("w2"),
    )
    clock.now += 2  # w1 is now older than 7 days; w2 is not
    fresh = await store.record_webhook(_note(_status("w1"), _status("w2")))
    assert fresh.statuses == (_status("w1"),)
    assert len(store) == 2


async def test_the_size_bound_forgets_the_oldest_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryWebhookStore(max_keys=3)
    with caplog.at_level(logging.WARNING):
        for name in ("w1", "w2", "w3", "w4", "w5"):
            await store.record_webhook(_note(_status(name)))
    assert len(store) == 3
    assert store.evicted == 2
    assert caplog.text.count("forgetting the oldest") == 1
    kept = await store.record_webhook(_note(_status("w3"), _status("w4"), _status("w5")))
    assert kept.statuses == ()
    assert (await store.record_webhook(_note(_status("w1")))).statuses == (_status("w1"),)


async def test_concurrent_calls_return_a_key_once() -> None:
    store = MemoryWebhookStore()
    notes = [_note(_status("w1"), _status(f"x{i}")) for i in range(20)]
    results = await asyncio.gather(*(store.record_webhook(n) for n in notes))
    assert sum(s.message_id == "w1" for r in results for s in r.statuses) == 1


@pytest.mark.parametrize(
    "kwargs", [{"ttl": 0}, {"ttl": "7d"}, {"ttl": True}, {"max_keys": 0}, {"max_keys": 2.0}]
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MemoryWebhookStore(**kwargs)  # type: ignore[arg-type]
