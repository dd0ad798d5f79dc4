"""``set_webhook`` / ``get_webhook`` on ``/v1/configs/webhook``, for Cloud and On-Premise.

webhooks-and-statuses.md §2.1 (the path keeps /v1 on waba-v2; body and answer {url, headers}),
§2.2 (https, no port, no '_' in the host or header names).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialog360_async import Dialog360Client, OnPremiseClient, RetryPolicy, ValidationError
from dialog360_async._webhook_config import WebhookConfig
from dialog360_async.errors import APIError
from dialog360_async.testing import FakeDialog360, FakeResponse
from tests.conftest import API_KEY

SECRET = "hook-s3cret-value"
HOOK = "https://hooks.example.com/whatsapp"
FAST = RetryPolicy(sleep=lambda _: _no_wait(), random=lambda: 0.0)


async def _no_wait() -> None:
    return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeDialog360]:
    async with FakeDialog360(throughput=None) as server:
        yield server


@pytest.fixture(params=[Dialog360Client, OnPremiseClient], ids=["cloud", "on_premise"])
async def client(
    request: pytest.FixtureRequest, fake: FakeDialog360
) -> AsyncIterator[Dialog360Client | OnPremiseClient]:
    async with request.param(API_KEY, base_url=fake.url, retry=FAST, rate_limit=None) as c:
        yield c


async def test_set_then_get_round_trip(
    client: Dialog360Client | OnPremiseClient, fake: FakeDialog360
) -> None:
    assert await client.get_webhook() is None  # {"url": null, "headers": {}}: none set
    headers = {"Authorization": SECRET, "X-Partner-Auth": "second"}
    confirmed = await client.set_webhook(HOOK, headers=headers)
    assert confirmed == WebhookConfig(url=HOOK, headers=headers)
    post = fake.requests[-1]
    assert (post.method, post.path) == ("POST", "/v1/configs/webhook")  # /v1 on both hosts
    assert post.json["url"] == HOOK
    assert sorted(post.json["headers"]) == ["Authorization", "X-Partner-Auth"]
    got = await client.get_webhook()
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("GET", "/v1/configs/webhook")
    assert got == WebhookConfig(url=HOOK, headers=headers)  # the values did arrive
    assert got is not None and got.headers["Authorization"] == SECRET

    again = await client.set_webhook("https://other.example.com/h")  # headers=None: none
    assert again.headers == {}
    assert await client.get_webhook() == WebhookConfig(url="https://other.example.com/h")


async def test_loopback_urls_may_use_http_and_a_port(
    client: Dialog360Client | OnPremiseClient,
) -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:9/x", "https://[::1]:8443/y"):
        assert (await client.set_webhook(url)).url == url
        got = await client.get_webhook()
        assert got is not None and got.url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/h", "https://"),  # plain http off loopback
        ("https://hooks.example.com:8443/h", "port"),
        ("https://hooks.example.com:443/h", "port"),  # even the default one, written out
        ("https://my_hooks.example.com/h", "'_'"),
        ("https://a.b_c.example.com/h", "'_'"),
        ("not a url", "spaces"),
        ("hooks.example.com/h", "absolute"),
        ("/relative/path", "absolute"),
        ("ftp://hooks.example.com/h", "absolute https"),
        ("https:///no-host", "host"),
        ("https://hooks.example.com/h\r\nX: y", "control"),
        ("https://hooks.example.com/" + "a" * 2030, "2048"),  # too long
        ("", "non-empty"),
        (None, "non-empty"),
        (b"https://hooks.example.com/h", "non-empty"),
    ],
)
async def test_url_rules_are_checked_before_any_request(
    client: Dialog360Client | OnPremiseClient, fake: FakeDialog360, url: Any, why: str
) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        await client.set_webhook(url)
    assert info.value.field == "url"
    assert fake.requests == []


async def test_url_errors_do_not_repeat_the_url() -> None:
    # A token in the query string is as secret as a header value.
    with pytest.raises(ValidationError) as info:
        await Dialog360Client(API_KEY).set_webhook("http://hooks.example.com/h?token=" + SECRET)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "field", "why"),
    [
        ({"X_Auth": SECRET}, "headers", "without '_'"),  # 360dialog refuses '_' in names
        ({"Bad Name": SECRET}, "headers", "header names"),
        ({"": SECRET}, "headers", "header names"),
        ({"X-Auth:": SECRET}, "headers", "header names"),
        ({1: SECRET}, "headers", "header names"),
        ({"Authorization": SECRET, "authorization": "x"}, "headers", "more than once"),
        ({"Authorization": SECRET + "\r\nX-Evil: 1"}, "headers['Authorization']", "control"),
        ({"Authorization": SECRET + "\x00"}, "headers['Authorization']", "control"),
        ({"Authorization": SECRET + "\ud800"}, "headers['Authorization']", "surrogate"),
        ({"Authorization": ""}, "headers['Authorization']", "non-empty"),
        ({"Authorization": 42}, "headers['Authorization']", "non-empty string"),
        ([("Authorization", SECRET)], "headers", "mapping"),
        ("Authorization: x", "headers", "mapping"),
    ],
)
async def test_header_rules_are_checked_before_any_request(
    client: Dialog360Client | OnPremiseClient,
    fake: FakeDialog360,
    headers: Any,
    field: str,
    why: str,
) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        await client.set_webhook(HOOK, headers=headers)
    assert info.value.field == field
    assert SECRET not in str(info.value)  # values are secrets: never in the message
    assert fake.requests == []


def test_repr_hides_header_values_and_url_secrets() -> None:
    config = WebhookConfig(
        url=f"https://user:{SECRET}@hooks.example.com/h?token={SECRET}&v=1",
        headers={"Authorization": SECRET, "X-Other": "also-secret"},
    )
    shown = repr(config)
    assert SECRET not in shown and "also-secret" not in shown
    assert "Authorization" in shown and "X-Other" in shown  # names help debugging
    assert "hooks.example.com" in shown and "token" in shown
    assert SECRET not in str(config)
    assert config.headers["Authorization"] == SECRET  # the value itself is there to use


def test_repr_of_an_odd_url_does_not_raise() -> None:
    assert "hooks" not in repr(WebhookConfig(url="http://[bad"))


def test_the_model_is_frozen_copyable_and_picklable() -> None:
    headers = {"Authorization": SECRET}
    config = WebhookConfig(url=HOOK, headers=headers)
    headers["Authorization"] = "changed"
    assert config.headers["Authorization"] == SECRET  # a copy was kept
    with pytest.raises(AttributeError):
        config.url = "https://x.example.com"  # type: ignore[misc]
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert hash(config) == hash(WebhookConfig(url=HOOK, headers={"Authorization": SECRET}))


async def test_setting_is_retried_like_other_idempotent_calls(fake: FakeDialog360) -> None:
    fake.script("POST", "/v1/configs/webhook", FakeResponse(status=500, process=True))
    fake.script("GET", "/v1/configs/webhook", FakeResponse(close=True))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=FAST) as client:
        # A 500 after the change was made is ambiguous: a send would not retry, this does.
        assert (await client.set_webhook(HOOK)).url == HOOK
        got = await client.get_webhook()  # a dropped connection, then the answer
    assert got == WebhookConfig(url=HOOK)
    posts = [r for r in fake.requests if r.method == "POST"]
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(posts) == 2 and len(gets) == 2


async def test_a_set_answer_without_the_config_returns_what_was_sent(
    fake: FakeDialog360,
) -> None:
    fake.script("POST", "/v1/configs/webhook", FakeResponse(status=200, json={"meta": {}}))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        confirmed = await client.set_webhook(HOOK, headers={"Authorization": SECRET})
    assert confirmed == WebhookConfig(url=HOOK, headers={"Authorization": SECRET})


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"url": 5, "headers": {}},
        {"url": HOOK, "headers": {"Authorization": 5}},
        {"url": HOOK, "headers": [["Authorization", SECRET]]},
    ],
)
async def test_a_get_answer_of_another_shape_is_an_error_without_the_body(
    fake: FakeDialog360, answer: Any
) -> None:
    fake.script("GET", "/v1/configs/webhook", FakeResponse(status=200, json=answer))
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        with pytest.raises(APIError, match="unexpected response body") as info:
            await client.get_webhook()
    assert info.value.body is None  # it may hold header values
    assert SECRET not in repr(info.value)


async def test_the_api_refusing_it_raises() -> None:
    async with FakeDialog360(api_keys=[API_KEY], throughput=None) as fake:
        async with Dialog360Client("wrong-key", base_url=fake.url, retry=None) as client:
            with pytest.raises(APIError) as info:
                await client.set_webhook(HOOK)
    assert info.value.status == 401
