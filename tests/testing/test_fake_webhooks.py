"""The fake sends status webhooks: shapes, order, fates, batching, duplicates, early statuses,
redelivery, callback data, signatures and exact idling (against real loopback receivers)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from dialog360_async.testing import FakeDialog360, WebhookPlan
from dialog360_async.webhooks import StatusUpdate, WebhookReceiver, parse_webhook

if TYPE_CHECKING:
    from tests.testing.conftest import Post, Receiver

KEY = "secret-key-1"
LADDER = ["sent", "delivered", "read"]


def text(to: str, *, cloud: bool = True, callback: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to, "type": "text", "text": {"body": "hello"}}
    if cloud:
        body["messaging_product"] = "whatsapp"
    if callback is not None:
        body["biz_opaque_callback_data"] = callback
    return body


async def send(
    session: aiohttp.ClientSession, fake: FakeDialog360, body: dict[str, Any], *, cloud: bool = True
) -> str:
    """Send one message; return its message id (the send must be accepted)."""
    path = "/messages" if cloud else "/v1/messages"
    async with session.post(fake.url + path, json=body, headers={"D360-API-KEY": KEY}) as answer:
        assert answer.status in (200, 201), await answer.text()
        return str((await answer.json())["messages"][0]["id"])


async def idle(fake: FakeDialog360) -> None:
    await asyncio.wait_for(fake.webhooks_idle(), 10)


# -- shapes -------------------------------------------------------------------------------------


async def test_cloud_statuses_have_the_meta_envelope(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url) as fake:
        message_id = await send(session, fake, text("+1 555 0001", callback="b:c1|r:7"))
        await idle(fake)
    assert [post.answered for post in receiver.posts] == [200, 200, 200]
    statuses = []
    for post in receiver.posts:  # the §1.7 (a) structure, key by key
        body = post.json
        assert post.headers["Content-Type"] == "application/json"
        assert body["object"] == "whatsapp_business_account"
        [entry] = body["entry"]
        assert entry["id"].isdigit()
        [change] = entry["changes"]
        assert change["field"] == "messages"
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert set(value["metadata"]) == {"display_phone_number", "phone_number_id"}
        assert all(v.isdigit() for v in value["metadata"].values())
        [item] = value["statuses"]
        statuses.append(item)
    sent, delivered, read = statuses
    for item, value in zip(statuses, LADDER, strict=True):
        assert item["id"] == message_id
        assert item["status"] == value
        assert item["recipient_id"] == "15550001"
        assert isinstance(item["timestamp"], str) and item["timestamp"].isdigit()
        assert item["biz_opaque_callback_data"] == "b:c1|r:7"
        assert "errors" not in item
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert delivered["pricing"] == sent["pricing"]
    assert "pricing" not in read  # Meta prices the sent and one of delivered/read only
    parsed = [parse_webhook(post.raw).statuses[0] for post in receiver.posts]
    assert [(s.message_id, s.status, s.callback_data) for s in parsed] == [
        (message_id, value, "b:c1|r:7") for value in LADDER
    ]


async def test_on_premise_statuses_are_flat(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url) as fake:
        body = text("15550002", cloud=False)
        body["biz_opaque_callback_data"] = "not on On-Premise"
        message_id = await send(session, fake, body, cloud=False)
        await idle(fake)
    items = []
    for post in receiver.posts:  # the §1.7 (e) structure
        assert set(post.json) == {"statuses"}
        [item] = post.json["statuses"]
        items.append(item)
    assert [item["status"] for item in items] == LADDER
    sent, delivered, read = items
    for item in items:
        assert item["id"] == message_id
        assert item["type"] == "message"
        assert item["message"] == {"recipient_id": "15550002"}
        assert item["recipient_id"] == "15550002"
        assert "biz_opaque_callback_data" not in item
    assert sent["conversation"]["origin"] == {"type": "user_initiated"}
    assert int(sent["conversation"]["expiration_timestamp"]) > int(sent["timestamp"])
    assert "expiration_timestamp" not in delivered["conversation"]
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "CBP",
        "category": "user_initiated",
    }
    assert "pricing" not in read and "conversation" not in read
    assert [s.status for p in receiver.posts for s in parse_webhook(p.raw).statuses] == LADDER


async def test_failed_statuses_carry_the_error_object(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url) as fake:
        fake.fate("15550003", "failed", code=131049)
        cloud_id = await send(session, fake, text("15550003", callback="tag"))
        onprem_id = await send(session, fake, text("15550004", cloud=False), cloud=False)
        fake.fate("15550004", "failed", code=470)
        onprem_failed = await send(session, fake, text("15550004", cloud=False), cloud=False)
        await idle(fake)
    seen = receiver.by_message()
    assert seen[cloud_id] == ["sent", "failed"]  # failed in delivery, after a sent
    assert seen[onprem_id] == LADDER
    assert seen[onprem_failed] == ["failed"]  # 470: never sent
    failed = {item["id"]: item for item in receiver.statuses() if item["status"] == "failed"}
    cloud = failed[cloud_id]
    assert "pricing" not in cloud
    assert cloud["biz_opaque_callback_data"] == "tag"
    [error] = cloud["errors"]
    assert error["code"] == 131049
    assert (
        error["title"]
        == error["message"]
        == ("This message was not delivered to maintain healthy ecosystem engagement.")
    )
    assert error["error_data"]["details"].startswith("In order to maintain healthy")
    assert error["href"].startswith("https://developers.facebook.com/")
    [flat] = failed[onprem_failed]["errors"]
    assert set(flat) == {"code", "title", "details"} and flat["code"] == 470
    parsed = [s for p in receiver.posts for s in parse_webhook(p.raw).statuses if s.errors]
    assert [(s.message_id, s.errors[0].code) for s in parsed] == [
        (cloud_id, 131049),
        (onprem_failed, 470),
    ]


# -- order, fates and the random mix --------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.01])
async def test_each_message_goes_sent_delivered_read_in_order(
    receiver: Receiver, session: aiohttp.ClientSession, delay: float
) -> None:
    plan = WebhookPlan(sent_delay=delay, delivered_delay=delay, read_delay=delay, concurrency=8)
    async with FakeDialog360(
        engage_all=True, throughput=None, webhook_url=receiver.url, webhooks=plan
    ) as fake:
        ids = await asyncio.gather(
            *(send(session, fake, text(f"1555010{i:02d}")) for i in range(30))
        )
        await idle(fake)
    seen = receiver.by_message()
    assert set(seen) == set(ids)
    assert all(seen[message_id] == LADDER for message_id in ids)


async def test_shuffle_gives_up_the_order(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    plan = WebhookPlan(shuffle=True, jitter=0.03, max_batch=10, linger=0.02, seed=3)
    async with FakeDialog360(
        engage_all=True, throughput=None, webhook_url=receiver.url, webhooks=plan
    ) as fake:
        ids = [await send(session, fake, text(f"1555020{i:02d}")) for i in range(10)]
        await idle(fake)
    seen = receiver.by_message()
    assert all(sorted(seen[message_id]) == sorted(LADDER) for message_id in ids)
    assert any(seen[message_id] != LADDER for message_id in ids)


async def test_fates_per_recipient(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url) as fake:
        fake.fate("15550011", "failed", code=131026)
        fake.fate("15550012", "sent")
        fake.fate("15550013", "delivered")
        fake.fate("15550014", "read")
        fake.fate("+1 555 0015", "failed", code=130472)
        ids = {n: await send(session, fake, text(n)) for n in ("15550011", "15550012", "15550013")}
        ids["15550014"] = await send(session, fake, text("15550014"))
        ids["15550015"] = await send(session, fake, text("15550015"))
        await idle(fake)
        with pytest.raises(ValueError, match="fate must be one of"):
            fake.fate("15550016", "lost")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="only a failed fate takes a code"):
            fake.fate("15550016", "read", code=131026)
    seen = receiver.by_message()
    assert seen[ids["15550011"]] == ["sent", "failed"]
    assert seen[ids["15550012"]] == ["sent"]
    assert seen[ids["15550013"]] == ["sent", "delivered"]
    assert seen[ids["15550014"]] == LADDER
    assert seen[ids["15550015"]] == ["failed"]
    truth = fake.delivery
    assert [(truth[ids[n]].status, truth[ids[n]].code) for n in sorted(ids)] == [
        ("failed", 131026),
        ("sent", None),
        ("delivered", None),
        ("read", None),
        ("failed", 130472),
    ]
    assert truth.counts() == {"failed": 2, "sent": 1, "delivered": 1, "read": 1}
    assert truth.failures() == {131026: 1, 130472: 1}


async def _mix(session: aiohttp.ClientSession, receiver: Receiver, plan: WebhookPlan) -> list[Any]:
    async with FakeDialog360(
        engage_all=True, throughput=None, webhook_url=receiver.url, webhooks=plan
    ) as fake:
        ids = [await send(session, fake, text(f"155503{i:03d}")) for i in range(80)]
        await idle(fake)
    records = [fake.delivery[message_id] for message_id in ids]
    return [(r.recipient_id, r.status, r.code) for r in records]


async def test_a_seeded_random_mix_is_reproducible_and_matches_what_was_posted(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    codes = (131026, 131049, 131050, 131047)
    plan = WebhookPlan(fail_ratio=0.25, codes=codes, undelivered_ratio=0.1, read_ratio=0.5, seed=1)
    first = await _mix(session, receiver, plan)
    last_seen = {}
    code_seen = {}
    for item in receiver.statuses():
        last_seen[item["id"]] = item["status"]
        if item["status"] == "failed":
            code_seen[item["id"]] = item["errors"][0]["code"]
    receiver.posts.clear()
    again = await _mix(session, receiver, plan)  # a fresh fake: the same seed, decisions
    assert again == first
    finals = [status for _, status, _ in first]
    assert {
        value: finals.count(value) > 0 for value in ("sent", "delivered", "read", "failed")
    } == {
        "sent": True,
        "delivered": True,
        "read": True,
        "failed": True,
    }
    assert {code for _, status, code in first if status == "failed"} <= set(codes)
    assert sorted(last_seen.values()) == sorted(finals)  # what it posted is what it decided
    assert sorted(code_seen.values()) == sorted(c for _, s, c in first if s == "failed")


# -- batching and duplicates ----------------------------------------------------------------


async def test_statuses_are_batched_up_to_max_batch(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    plan = WebhookPlan(max_batch=5, linger=0.3, seed=5)
    async with FakeDialog360(
        engage_all=True, throughput=None, webhook_url=receiver.url, webhooks=plan
    ) as fake:
        ids = await asyncio.gather(
            *(send(session, fake, text(f"1555040{i:02d}")) for i in range(10))
        )
        await idle(fake)
    sizes = [len(post.statuses()) for post in receiver.posts]
    assert sum(sizes) == 30 and max(sizes) == 5 and len(sizes) < 30
    assert all(receiver.by_message()[message_id] == LADDER for message_id in ids)
    for post in receiver.posts:  # whatever the layout (entries, changes, statuses)
        assert len(parse_webhook(post.raw).statuses) == len(post.statuses())
    layouts = {(len(post.json["entry"]), len(post.values())) for post in receiver.posts}
    assert len(layouts) > 1  # batches come as one change, several changes or several entries


async def test_every_status_duplicated_arrives_twice_in_separate_posts(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    plan = WebhookPlan(duplicate_ratio=1.0)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        ids = [await send(session, fake, text(f"1555050{i}")) for i in range(4)]
        await idle(fake)
    pairs = receiver.pairs()
    assert sorted(pairs) == sorted([(m, s) for m in ids for s in LADDER] * 2)
    assert all(len(post.statuses()) == 1 for post in receiver.posts)
    assert fake.stats()["webhooks"]["duplicates"] == 12


async def test_a_duplicate_ratio_duplicates_that_share(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    plan = WebhookPlan(duplicate_ratio=0.3, seed=11)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        ids = [await send(session, fake, text(f"155506{i:02d}")) for i in range(20)]
        await idle(fake)
    pairs = receiver.pairs()
    extra = len(pairs) - len(set(pairs))
    assert set(pairs) == {(m, s) for m in ids for s in LADDER}
    assert extra == fake.stats()["webhooks"]["duplicates"]
    assert 0 < extra < 60


# -- before the answer, redelivery ------------------------------------------------------------


async def test_a_status_can_arrive_before_the_send_answer(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    returned = asyncio.Event()
    arrivals: list[tuple[bool, str, str]] = []

    def arrived(post: Post) -> None:
        [item] = post.statuses()
        arrivals.append((returned.is_set(), item["id"], item["status"]))

    receiver.on_post = arrived
    receiver.answers = [(200, 0.2)]  # a slow first answer: the send waits for it
    plan = WebhookPlan(early_ratio=1.0)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        message_id = await send(session, fake, text("15550071"))
        returned.set()
        await idle(fake)
    assert arrivals[0] == (False, message_id, "sent")
    assert [status for _, _, status in arrivals] == LADDER
    assert fake.stats()["webhooks"]["early"] == 1


class Sleeps:
    """An injected backoff sleep: records the delays, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_non_200_answers_are_redelivered_with_backoff(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    sleeps = Sleeps()
    receiver.answers = [(500, 0.0), (204, 0.0)]  # only 200 counts (§2.4)
    plan = WebhookPlan(backoff=1.5, sleep=sleeps, attempts=4)
    async with FakeDialog360(
        engage_all=True, webhook_url=receiver.url, webhook_secret="s", webhooks=plan
    ) as fake:
        message_id = await send(session, fake, text("15550081"))
        await idle(fake)
    first, second, third = receiver.posts[:3]
    assert [first.answered, second.answered, third.answered] == [500, 204, 200]
    assert first.raw == second.raw == third.raw  # the same body, the same signature
    assert first.headers["x-360dialog-signature"] == third.headers["x-360dialog-signature"]
    assert sleeps.delays == [1.5, 3.0]
    assert receiver.by_message()[message_id] == LADDER
    counters = fake.stats()["webhooks"]
    assert counters["redeliveries"] == 2 and counters["failed_attempts"] == 2
    assert counters["posts"] == 5 and counters["delivered"] == 3 and counters["gave_up"] == 0


async def test_a_slow_receiver_counts_as_failed_and_gets_it_again(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.answers = [(200, 1.0)]  # answers 200, but after the timeout
    plan = WebhookPlan(timeout=0.2, backoff=0.0)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        message_id = await send(session, fake, text("15550091"))
        await idle(fake)
    assert receiver.posts[0].raw == receiver.posts[1].raw
    assert [s["status"] for p in receiver.posts for s in p.statuses()] == ["sent", *LADDER]
    counters = fake.stats()["webhooks"]
    assert counters["timeouts"] == 1 and counters["redeliveries"] == 1
    assert fake.delivery.lost == frozenset()
    assert fake.delivery[message_id].status == "read"


async def test_after_the_last_attempt_the_fake_gives_up_and_remembers(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    sleeps = Sleeps()
    receiver.answers = [(500, 0.0)] * 9
    plan = WebhookPlan(attempts=3, backoff=0.5, sleep=sleeps)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        message_id = await send(session, fake, text("15550101"))
        await idle(fake)
    assert len(receiver.posts) == 9  # each status tried 3 times; later ones still sent
    assert sleeps.delays == [0.5, 1.0] * 3
    assert fake.delivery.lost == {(message_id, value) for value in LADDER}
    counters = fake.stats()["webhooks"]
    assert counters["gave_up"] == 3 and counters["statuses"] == 0 and counters["pending"] == 0


async def test_an_emitter_failure_surfaces_from_idle(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async def broken_sleep(seconds: float) -> None:
        raise OSError("injected")

    receiver.answers = [(500, 0.0)]
    plan = WebhookPlan(sleep=broken_sleep)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        fake.fate("15550105", "sent")
        message_id = await send(session, fake, text("15550105"))
        with pytest.raises(RuntimeError, match="emitter failed") as raised:
            await idle(fake)
        assert isinstance(raised.value.__cause__, OSError)
        assert fake.delivery.lost == {(message_id, "sent")}
        await idle(fake)  # reported once


async def test_a_dead_receiver_is_retried_then_given_up(session: aiohttp.ClientSession) -> None:
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = probe.addresses[0][1]
    await probe.cleanup()  # nobody listens there now: connection refused
    plan = WebhookPlan(attempts=2, backoff=0.0)
    async with FakeDialog360(
        engage_all=True, webhook_url=f"http://127.0.0.1:{port}/hook", webhooks=plan
    ) as fake:
        fake.fate("15550111", "sent")
        message_id = await send(session, fake, text("15550111"))
        await idle(fake)
    assert fake.delivery.lost == {(message_id, "sent")}
    assert fake.stats()["webhooks"]["failed_attempts"] == 2


# -- callback data, auth headers and signatures ---------------------------------------------


async def test_callback_data_is_echoed_and_optionally_dropped_on_failed(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    plan = WebhookPlan(callback_on_failed=False)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        fake.fate("15550122", "failed", code=131050)
        kept = await send(session, fake, text("15550121", callback="b:x|r:1"))
        dropped = await send(session, fake, text("15550122", callback="b:x|r:2"))
        plain = await send(session, fake, text("15550123"))
        await idle(fake)
    echoed = {
        (s["id"], s["status"]): s.get("biz_opaque_callback_data") for s in receiver.statuses()
    }
    assert {echoed[(kept, value)] for value in LADDER} == {"b:x|r:1"}
    assert echoed[(dropped, "sent")] == "b:x|r:2"
    assert echoed[(dropped, "failed")] is None
    assert {echoed[(plain, value)] for value in LADDER} == {None}
    assert fake.delivery[kept].callback_data == "b:x|r:1"


@pytest.mark.parametrize("prefix", ["", "sha256="])
async def test_headers_and_signature_are_sent_with_every_post(
    receiver: Receiver, session: aiohttp.ClientSession, prefix: str
) -> None:
    plan = WebhookPlan(signature_prefix=prefix)
    async with FakeDialog360(
        engage_all=True,
        webhook_url=receiver.url,
        webhook_headers={"Authorization": "hook-token", "X-Partner-Auth": "p"},
        webhook_secret="platform-secret",
        webhooks=plan,
    ) as fake:
        await send(session, fake, text("15550131"))
        await idle(fake)
    assert len(receiver.posts) == 3
    for post in receiver.posts:
        assert post.headers["Authorization"] == "hook-token"
        assert post.headers["X-Partner-Auth"] == "p"
        digest = hmac.new(b"platform-secret", post.raw, hashlib.sha256).hexdigest()
        assert post.headers["x-360dialog-signature"] == prefix + digest


async def test_the_sdk_receiver_accepts_the_fakes_stream_once_per_status(
    session: aiohttp.ClientSession,
) -> None:
    got: list[StatusUpdate] = []

    async def on_status(update: StatusUpdate) -> None:
        got.append(update)

    hook = WebhookReceiver(
        on_status=on_status, auth_headers={"Authorization": "t0k"}, signature_secret="sig"
    )
    runner = web.AppRunner(hook.app("/webhook"), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
        plan = WebhookPlan(
            duplicate_ratio=0.5, shuffle=True, max_batch=4, linger=0.01, fail_ratio=0.2, seed=2
        )
        async with FakeDialog360(
            engage_all=True,
            throughput=None,
            webhook_url=url,
            webhook_headers={"Authorization": "t0k"},
            webhook_secret="sig",
            webhooks=plan,
        ) as fake:
            for i in range(15):
                await send(session, fake, text(f"155501{i:02d}"))
            await idle(fake)
            counters = fake.stats()["webhooks"]
            for _ in range(200):  # its callbacks run after its 200s: a bounded wait
                if len(got) >= sum(len(r.statuses) for r in fake.delivery.values()):
                    break
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    expected = {(r.message_id, s) for r in fake.delivery.values() for s in r.statuses}
    assert sorted(u.key for u in got) == sorted(expected)  # every status once, dups dropped
    assert counters["duplicates"] > 0 and counters["failed_attempts"] == 0


# -- idle and lifecycle ---------------------------------------------------------------------


async def test_webhooks_idle_is_exact(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    plan = WebhookPlan(sent_delay=0.05, delivered_delay=0.05, read_delay=0.05)
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan) as fake:
        for i in range(5):
            await send(session, fake, text(f"1555014{i}"))
        assert fake.stats()["webhooks"]["pending"] == 15
        assert len(receiver.posts) < 15
        await idle(fake)
        assert len(receiver.statuses()) == 15
        assert fake.stats()["webhooks"]["pending"] == 0
        await idle(fake)  # idle again: returns at once


async def test_closing_cancels_pending_webhooks_cleanly(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.answers = [(200, 3.0)]
    plan = WebhookPlan(read_delay=30.0, linger=0.0)
    fake = FakeDialog360(engage_all=True, webhook_url=receiver.url, webhooks=plan)
    await fake.start()
    hanging = asyncio.Event()
    receiver.on_post = lambda post: hanging.set()
    await send(session, fake, text("15550151"))  # its `sent` POST hangs for 3 s
    fake.fate("15550152", "read")
    await send(session, fake, text("15550152"))
    await asyncio.wait_for(hanging.wait(), 5)
    assert fake.stats()["webhooks"]["pending"] > 0
    await asyncio.wait_for(fake.close(), 2)
    await asyncio.wait_for(fake.webhooks_idle(), 1)
    assert fake.stats()["webhooks"]["pending"] == 0
    await asyncio.sleep(0)
    left = [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]
    assert not [name for name in left if "Emitter" in name], left
