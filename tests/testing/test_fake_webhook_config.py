"""Where the fake's webhooks go (``/v1/configs/webhook``, `set_webhook`, the CLI), inbound
messages and the 24-hour window, templates, and what `reset` and the stats say."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import pytest

from dialog360_async.testing import FakeDialog360, WebhookPlan
from dialog360_async.testing.__main__ import main
from dialog360_async.webhooks import parse_webhook

if TYPE_CHECKING:
    from tests.testing.conftest import Receiver, Wire

KEY = "secret-key-1"
OTHER = "secret-key-2"
LADDER = ["sent", "delivered", "read"]


def text(to: str, *, cloud: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to, "type": "text", "text": {"body": "hello"}}
    if cloud:
        body["messaging_product"] = "whatsapp"
    return body


def template(to: str, *, cloud: bool = True) -> dict[str, Any]:
    language: dict[str, str] = {"code": "en_US"}
    body: dict[str, Any] = {"to": to, "type": "template", "template": {"name": "promo"}}
    if cloud:
        body["messaging_product"] = "whatsapp"
    else:
        language["policy"] = "deterministic"
        body["template"]["namespace"] = "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574"
    body["template"]["language"] = language
    return body


async def call(
    session: aiohttp.ClientSession,
    fake: FakeDialog360,
    method: str,
    path: str,
    json: Any = None,
    key: str | None = KEY,
) -> tuple[int, Any]:
    headers = {} if key is None else {"D360-API-KEY": key}
    async with session.request(method, fake.url + path, json=json, headers=headers) as answer:
        return answer.status, await answer.json()


async def idle(fake: FakeDialog360) -> None:
    await asyncio.wait_for(fake.webhooks_idle(), 10)


# -- POST / GET /v1/configs/webhook -----------------------------------------------------------


async def test_a_channel_sets_and_reads_its_webhook(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(api_keys=[KEY, OTHER], engage_all=True) as fake:
        assert await call(session, fake, "GET", "/v1/configs/webhook") == (
            200,
            {"url": None, "headers": {}},
        )
        config = {"url": receiver.url, "headers": {"Authorization": "hook-secret"}}
        assert await call(session, fake, "POST", "/v1/configs/webhook", config) == (200, config)
        assert await call(session, fake, "GET", "/v1/configs/webhook") == (200, config)
        other = await call(session, fake, "GET", "/v1/configs/webhook", key=OTHER)
        assert other == (200, {"url": None, "headers": {}})  # per API key (per number)
        status, sent = await call(session, fake, "POST", "/messages", text("15550201"))
        assert status == 200
        _, unheard = await call(session, fake, "POST", "/messages", text("15550202"), key=OTHER)
        await idle(fake)
    assert [s["status"] for s in receiver.statuses()] == LADDER
    assert {s["id"] for s in receiver.statuses()} == {sent["messages"][0]["id"]}
    assert all(post.headers["Authorization"] == "hook-secret" for post in receiver.posts)
    assert unheard["messages"][0]["id"] not in fake.delivery


async def test_recorded_webhook_configs_hide_the_header_values(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360() as fake:
        config = {"url": receiver.url, "headers": {"Authorization": "hook-secret"}}
        await call(session, fake, "POST", "/v1/configs/webhook", config)
        [recorded] = fake.requests
        assert recorded.json == {"url": receiver.url, "headers": {"Authorization": "***"}}
        async with session.get(fake.url + "/_fake/requests") as answer:
            assert "hook-secret" not in await answer.text()


async def test_the_webhook_route_needs_a_key(session: aiohttp.ClientSession) -> None:
    async with FakeDialog360(api_keys=[KEY]) as fake:
        status, body = await call(session, fake, "GET", "/v1/configs/webhook", key="wrong")
        assert status == 401 and body["meta"]["success"] is False
        config = {"url": "https://hooks.example.com/wa"}
        status, _ = await call(session, fake, "POST", "/v1/configs/webhook", config, key=None)
        assert status == 401


@pytest.mark.parametrize(
    "config",
    [
        {"url": "http://hooks.example.com/wa"},  # not https
        {"url": "https://hooks.example.com:8443/wa"},  # a port
        {"url": "https://my_hooks.example.com/wa"},  # "_" in the host
        {"url": "https://hooks.example.com/wa", "headers": {"X_Auth": "SECRET-VALUE"}},
        {"url": "https://hooks.example.com/wa", "headers": {"X-Auth": 5}},
        {"url": "https://hooks.example.com/wa", "headers": ["X-Auth"]},
        {"url": "ftp://127.0.0.1/wa"},
        {"url": "/relative"},
        {"url": ""},
        {"headers": {}},
        ["https://hooks.example.com/wa"],
    ],
)
async def test_webhook_urls_follow_360dialogs_rules(
    session: aiohttp.ClientSession, config: Any
) -> None:
    async with FakeDialog360() as fake:
        status, body = await call(session, fake, "POST", "/v1/configs/webhook", config)
        assert status == 400
        assert body["meta"]["success"] is False and body["meta"]["httpCode"] == 400
        assert "SECRET-VALUE" not in body["meta"]["developerMessage"]
        assert await call(session, fake, "GET", "/v1/configs/webhook") == (
            200,
            {"url": None, "headers": {}},
        )


async def test_a_public_url_is_stored_but_never_called(session: aiohttp.ClientSession) -> None:
    async with FakeDialog360(engage_all=True) as fake:
        config = {"url": "https://hooks.example.com/wa", "headers": {"X-Auth": "a"}}
        assert await call(session, fake, "POST", "/v1/configs/webhook", config) == (200, config)
        status, _ = await call(session, fake, "POST", "/messages", text("15550211"))
        assert status == 200
        counters = fake.stats()["webhooks"]
        assert counters["not_loopback"] == 1 and counters["posts"] == 0
        assert len(fake.delivery) == 0


async def test_set_webhook_and_the_constructor_take_loopback_urls_only(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(ValueError, match="only to loopback"):
        FakeDialog360(webhook_url="https://hooks.example.com/wa")
    async with FakeDialog360(api_keys=[KEY, OTHER], engage_all=True) as fake:
        with pytest.raises(ValueError, match="only to loopback"):
            fake.set_webhook("https://hooks.example.com/wa")
        with pytest.raises(ValueError, match="header names"):
            fake.set_webhook(receiver.url, {"Bad_Name": "v"})
        with pytest.raises(ValueError, match="api_key"):
            fake.set_webhook(receiver.url, api_key="not-a-key")
        fake.set_webhook(receiver.url, {"X-Auth": "default"})  # every channel's default
        fake.set_webhook(receiver.url + "?own=1", {"X-Auth": "own"}, api_key=OTHER)
        assert await call(session, fake, "GET", "/v1/configs/webhook") == (
            200,
            {"url": receiver.url, "headers": {"X-Auth": "default"}},
        )
        await call(session, fake, "POST", "/messages", text("15550221"))
        await call(session, fake, "POST", "/messages", text("15550222"), key=OTHER)
        await idle(fake)
        assert (
            sorted(post.headers["X-Auth"] for post in receiver.posts)
            == ["default"] * 3 + ["own"] * 3
        )
        fake.set_webhook(None)
        fake.set_webhook(None, api_key=OTHER)
        await call(session, fake, "POST", "/messages", text("15550223"))
        assert fake.stats()["webhooks"]["pending"] == 0 and len(fake.delivery) == 2


async def test_no_webhook_means_no_webhook_work(wire: Wire, fake: FakeDialog360) -> None:
    for _ in range(3):
        status, _ = await wire.call("POST", "/messages", json=wire.location())
        assert status == 200
    assert len(fake.delivery) == 0
    assert set(fake.stats()["webhooks"].values()) == {0}
    await asyncio.wait_for(fake.webhooks_idle(), 1)


# -- the 24-hour window and inbound messages --------------------------------------------------


async def test_user_writes_opens_the_window_cloud(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(api_keys=[KEY], webhook_url=receiver.url) as fake:
        _, before = await call(session, fake, "POST", "/messages", text("+1 555 0301"))
        _, promo = await call(session, fake, "POST", "/messages", template("15550301"))
        await idle(fake)
        inbound_id = fake.user_writes("+1 555 0301", "where is my order?", api_key=KEY, name="Ana")
        await idle(fake)
        _, after = await call(session, fake, "POST", "/messages", text("15550301"))
        await idle(fake)
    seen = receiver.by_message()
    [before_id, promo_id, after_id] = (b["messages"][0]["id"] for b in (before, promo, after))
    assert seen[before_id] == ["failed"]  # HTTP 200, then 131047 (§5)
    failed = [s for s in receiver.statuses() if s["status"] == "failed"]
    assert failed[0]["errors"][0]["code"] == 131047
    assert seen[promo_id] == LADDER  # templates need no window
    promo_sent = next(s for s in receiver.statuses() if s["id"] == promo_id)
    assert promo_sent["pricing"]["billable"] is True
    assert seen[after_id] == LADDER
    [post] = [post for post in receiver.posts if post.messages()]
    [value] = post.values()
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": "15550301"}]
    [message] = value["messages"]
    assert message["from"] == "15550301" and message["id"] == inbound_id
    assert message["type"] == "text" and message["text"] == {"body": "where is my order?"}
    assert message["timestamp"].isdigit()
    [parsed] = parse_webhook(post.raw).messages
    assert (parsed.wa_id, parsed.profile_name, parsed.text) == (
        "15550301",
        "Ana",
        message["text"]["body"],
    )
    assert fake.stats()["webhooks"]["messages"] == 1


async def test_user_writes_opens_the_window_on_premise(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(api_keys=[KEY], webhook_url=receiver.url) as fake:
        _, before = await call(session, fake, "POST", "/v1/messages", text("15550311", cloud=False))
        _, promo = await call(
            session, fake, "POST", "/v1/messages", template("15550311", cloud=False)
        )
        await idle(fake)
        fake.user_writes("15550311", "hi", api_key=KEY)  # the channel sent On-Premise: flat shape
        await idle(fake)
        _, after = await call(session, fake, "POST", "/v1/messages", text("15550311", cloud=False))
        await idle(fake)
    seen = receiver.by_message()
    assert seen[before["messages"][0]["id"]] == ["failed"]
    [failed] = [s for s in receiver.statuses() if s["status"] == "failed"]
    assert failed["errors"][0]["code"] == 470
    assert seen[promo["messages"][0]["id"]] == LADDER
    assert seen[after["messages"][0]["id"]] == LADDER
    [post] = [post for post in receiver.posts if post.messages()]
    assert set(post.json) == {"contacts", "messages"}
    assert post.json["contacts"][0]["wa_id"] == "15550311"


async def test_user_writes_without_a_key_uses_the_default_webhook(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(webhook_url=receiver.url) as fake:
        fake.user_writes("15550321", "hello", api="on_premise")
        fake.user_writes("15550322", "hello")
        await idle(fake)
        inbound = list(receiver.posts)
        _, sent = await call(session, fake, "POST", "/messages", text("15550322"), key="any-key")
        await idle(fake)
    assert sorted("entry" in post.json for post in inbound) == [False, True]
    assert receiver.by_message()[sent["messages"][0]["id"]] == LADDER  # open on every channel
    stopped = FakeDialog360(webhook_url=receiver.url)
    with pytest.raises(RuntimeError, match="start the fake"):
        stopped.user_writes("15550324", "hello")
    async with FakeDialog360() as quiet:  # no webhook: the window opens, nothing is posted
        quiet.user_writes("15550323", "hello")
        assert quiet.stats()["webhooks"]["pending"] == 0


# -- templates --------------------------------------------------------------------------------


async def test_template_bodies_are_checked(session: aiohttp.ClientSession) -> None:
    async with FakeDialog360() as fake:
        assert (await call(session, fake, "POST", "/messages", template("15550331")))[0] == 200
        on_prem = template("15550331", cloud=False)
        assert (await call(session, fake, "POST", "/v1/messages", on_prem))[0] == 201
        del on_prem["template"]["namespace"]
        status, body = await call(session, fake, "POST", "/v1/messages", on_prem)
        assert status == 400 and body["errors"][0]["code"] == 1009
        cloud = template("15550331")
        del cloud["template"]["name"]
        status, body = await call(session, fake, "POST", "/messages", cloud)
        assert status == 400 and body["error"]["code"] == 131008
        cloud = template("15550331")
        cloud["template"]["components"] = "header"
        status, body = await call(session, fake, "POST", "/messages", cloud)
        assert status == 400 and body["error"]["code"] == 100


# -- reset and stats --------------------------------------------------------------------------


async def test_reset_forgets_fates_and_truth_but_keeps_the_webhook(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(api_keys=[KEY], engage_all=True) as fake:
        config = {"url": receiver.url, "headers": {}}
        await call(session, fake, "POST", "/v1/configs/webhook", config)
        fake.fate("15550341", "sent")
        await call(session, fake, "POST", "/messages", text("15550341"))
        await idle(fake)
        assert len(fake.delivery) == 1 and fake.stats()["webhooks"]["posts"] == 1
        fake.reset(state=True)
        assert len(fake.delivery) == 0 and fake.stats()["webhooks"]["posts"] == 0
        assert await call(session, fake, "GET", "/v1/configs/webhook") == (200, config)
        _, body = await call(session, fake, "POST", "/messages", text("15550341"))
        await idle(fake)
        assert fake.delivery[body["messages"][0]["id"]].status == "read"  # the fate is gone


async def test_stats_route_shows_the_webhook_counters(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    async with FakeDialog360(engage_all=True, webhook_url=receiver.url) as fake:
        await call(session, fake, "POST", "/messages", text("15550351"))
        await idle(fake)
        async with session.get(fake.url + "/_fake/stats") as answer:
            counters = (await answer.json())["webhooks"]
    assert counters == {
        "posts": 3,
        "delivered": 3,
        "redeliveries": 0,
        "failed_attempts": 0,
        "timeouts": 0,
        "gave_up": 0,
        "statuses": 3,
        "messages": 0,
        "duplicates": 0,
        "early": 0,
        "not_loopback": 0,
        "pending": 0,
    }


@pytest.mark.parametrize(
    "field",
    ["fail_ratio", "read_ratio", "duplicate_ratio", "early_ratio", "undelivered_ratio"],
)
def test_plan_ratios_are_checked(field: str) -> None:
    change: dict[str, Any] = {field: 1.5}
    with pytest.raises(ValueError, match=field):
        attrs.evolve(WebhookPlan(), **change)


@pytest.mark.parametrize(
    ("field", "value"), [("max_batch", 0), ("attempts", 0), ("timeout", -1.0), ("codes", ())]
)
def test_plan_counts_and_codes_are_checked(field: str, value: Any) -> None:
    change: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        attrs.evolve(WebhookPlan(), **change)


# -- the standalone server --------------------------------------------------------------------


async def test_the_standalone_server_posts_webhooks(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    from tests.testing.test_fake_cli import serve

    arrived = asyncio.Event()
    receiver.on_post = lambda post: arrived.set() if len(receiver.posts) == 3 else None
    async with serve(
        "--engage-all",
        "--webhook-url",
        receiver.url,
        "--webhook-header",
        "Authorization: t0k",
        "--webhook-seed",
        "4",
    ) as server:
        body = text("15550361")
        async with session.post(
            server.url + "/messages", json=body, headers={"D360-API-KEY": "k"}
        ) as answer:
            assert answer.status == 200
        await asyncio.wait_for(arrived.wait(), 10)
    assert [s["status"] for s in receiver.statuses()] == LADDER
    assert {post.headers["Authorization"] for post in receiver.posts} == {"t0k"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--webhook-url", "https://SECRETHOST.example/hook"],
        ["--webhook-url", "not a url SECRETHOST"],
        ["--webhook-header", "Bad_Name:SECRETHOST"],
        ["--webhook-header", "no-colon-SECRETHOST"],
        ["--webhook-fail-ratio", "SECRETHOST"],
    ],
)
def test_bad_webhook_flags_exit_2_without_echoing(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--webhook-" in err and "SECRETHOST" not in err
