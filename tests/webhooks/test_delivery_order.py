"""What reaches the callbacks does not depend on order, duplicates, batching or restarts."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from dialog360_async.webhooks import DEDUP_TTL, WebhookReceiver

from .harness import PATH, Recorder, SqliteStore, serve
from .payloads import cloud, onprem, status

VALUES = ("sent", "delivered", "read", "failed", "played", "some_future_status")
Key = tuple[str, str]


def _render(keys: list[Key], shape: int) -> dict[str, Any]:
    """One POST's body: On-Premise flat, or Cloud with the statuses spread over changes/entries."""
    raw = [status(message_id, value) for message_id, value in keys]
    if shape == 0:
        return onprem(raw)
    changes = [raw[i::shape] for i in range(shape)]
    return cloud(*changes, entries=1 + shape % 2)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[set[Key], list[dict[str, Any]]]:
    """A set of statuses, and the POST bodies that deliver each at least once, in any order."""
    count = draw(st.integers(1, 8))
    keys = {
        (f"wamid.{n}", value)
        for n in range(count)
        for value in draw(st.sets(st.sampled_from(VALUES), min_size=1, max_size=4))
    }
    ordered = sorted(keys)
    extra = draw(st.lists(st.sampled_from(ordered), max_size=12))
    stream = draw(st.permutations(ordered + extra))
    bodies = []
    while stream:
        size = draw(st.integers(1, 6))
        chunk, stream = stream[:size], stream[size:]
        bodies.append(_render(chunk, draw(st.integers(0, 3))))
    redelivered = draw(st.lists(st.sampled_from(bodies), max_size=3))
    return keys, draw(st.permutations(bodies + redelivered))


async def _deliver(bodies: list[dict[str, Any]], concurrency: int, at_once: int) -> Recorder:
    seen = Recorder()
    receiver = WebhookReceiver(on_status=seen.on_status, concurrency=concurrency)
    async with serve(receiver) as client:
        for start in range(0, len(bodies), at_once):
            answers = await asyncio.gather(
                *(client.post(PATH, json=body) for body in bodies[start : start + at_once])
            )
            assert [a.status for a in answers] == [200] * len(answers)
    return seen


@settings(max_examples=50, deadline=None)
@given(deliveries(), st.integers(1, 4), st.integers(1, 5))
def test_each_status_is_dispatched_once_whatever_the_order_duplicates_and_batching(
    case: tuple[set[Key], list[dict[str, Any]]], concurrency: int, at_once: int
) -> None:
    keys, bodies = case
    seen = asyncio.run(_deliver(bodies, concurrency, at_once))
    assert Counter(seen.keys) == Counter(keys)


def _batches(count: int, seed: int) -> tuple[set[Key], list[dict[str, Any]]]:
    rng = random.Random(seed)
    keys = {(f"wamid.{n}", value) for n in range(count) for value in rng.sample(VALUES, 3)}
    stream = sorted(keys)
    rng.shuffle(stream)
    bodies = [_render(stream[i : i + 4], i % 4) for i in range(0, len(stream), 4)]
    return keys, bodies


async def test_a_restart_with_a_persistent_store_dispatches_none_twice(tmp_path: Path) -> None:
    keys, bodies = _batches(20, seed=1)
    path = tmp_path / "seen.db"
    first, second = Recorder(), Recorder()
    store = SqliteStore(path)
    async with serve(WebhookReceiver(store=store, on_status=first.on_status)) as client:
        for body in bodies[: len(bodies) // 2]:
            assert (await client.post(PATH, json=body)).status == 200
    store.close()
    # A new process would open the same file; 360dialog redelivers everything (worst case).
    store = SqliteStore(path)
    async with serve(WebhookReceiver(store=store, on_status=second.on_status)) as client:
        for body in bodies:
            assert (await client.post(PATH, json=body)).status == 200
    store.close()
    assert first.keys and second.keys
    assert Counter(first.keys + second.keys) == Counter(keys)


async def test_without_a_persistent_store_a_restart_does_dispatch_twice() -> None:
    # The control for the test above: the default store forgets on restart.
    keys, bodies = _batches(5, seed=2)
    first, second = Recorder(), Recorder()
    for seen in (first, second):
        async with serve(WebhookReceiver(on_status=seen.on_status)) as client:
            for body in bodies:
                assert (await client.post(PATH, json=body)).status == 200
    assert Counter(first.keys) == Counter(second.keys) == Counter(keys)


async def test_a_restart_in_the_middle_of_a_stream_loses_none_and_dispatches_none_twice(
    tmp_path: Path,
) -> None:
    keys, bodies = _batches(40, seed=3)
    path = tmp_path / "seen.db"
    first, second = Recorder(), Recorder()
    store = SqliteStore(path)
    receiver = WebhookReceiver(store=store, on_status=first.on_status, concurrency=2)
    app = web.Application()
    app.router.add_post(PATH, receiver.handler)
    answers: list[int] = []
    third = asyncio.Event()
    in_flight = asyncio.Semaphore(4)
    async with receiver, TestClient(TestServer(app, host="127.0.0.1")) as client:

        async def post(body: dict[str, Any]) -> None:
            async with in_flight:
                answers.append((await client.post(PATH, json=body)).status)
            if len(answers) >= len(bodies) // 3:
                third.set()

        stream = [asyncio.ensure_future(post(body)) for body in bodies]
        await third.wait()
        await receiver.close()  # the process stops while POSTs are still arriving
        await asyncio.gather(*stream)
    store.close()
    assert 200 in answers and 503 in answers
    assert set(answers) == {200, 503}
    # The next process: 360dialog redelivers what was not answered 200, and, being unsure,
    # everything else too.
    store = SqliteStore(path)
    async with serve(WebhookReceiver(store=store, on_status=second.on_status)) as client:
        for body in bodies:
            assert (await client.post(PATH, json=body)).status == 200
    store.close()
    assert Counter(first.keys + second.keys) == Counter(keys)


async def test_after_seven_days_a_persistent_store_lets_a_status_through_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "seen.db"
    body = onprem([status("wamid.old", "read")])
    for now, expected in ((1e9, 1), (1e9 + DEDUP_TTL - 1, 0), (1e9 + 2 * DEDUP_TTL, 1)):
        seen = Recorder()
        store = SqliteStore(path, clock=now)
        async with serve(WebhookReceiver(store=store, on_status=seen.on_status)) as client:
            assert (await client.post(PATH, json=body)).status == 200
        store.close()
        assert len(seen.statuses) == expected
