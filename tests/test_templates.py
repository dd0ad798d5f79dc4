"""Text and template messages: validation at construction, the exact JSON bodies on both APIs
against the bundled fake, the converter's wire shape, JSONL input, and a template broadcast."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialog360_async import (
    APIError,
    BodyComponent,
    BulkSender,
    ButtonComponent,
    CurrencyParameter,
    DateTimeParameter,
    Dialog360Client,
    DocumentParameter,
    HeaderComponent,
    ImageParameter,
    Location,
    LocationParameter,
    OnPremiseClient,
    PayloadParameter,
    Template,
    TemplateMessage,
    TextMessage,
    TextParameter,
    ValidationError,
    VideoParameter,
    message_key,
)
from dialog360_async._converter import structure, unstructure
from dialog360_async.cli._input import InputError, MessageSource
from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY

USER = "+49 151 1234 5678"
TO = "+4915112345678"
NAMESPACE = "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574"
CLOUD_HEAD = {"messaging_product": "whatsapp", "recipient_type": "individual"}

HEADERS: list[tuple[Any, dict[str, Any]]] = [
    (TextParameter(text="Ada"), {"type": "text", "text": "Ada"}),
    (
        ImageParameter(link="https://cdn.example/a.png"),
        {"type": "image", "image": {"link": "https://cdn.example/a.png"}},
    ),
    (VideoParameter(id="1234567890"), {"type": "video", "video": {"id": "1234567890"}}),
    (
        DocumentParameter(link="https://cdn.example/r.pdf", filename="receipt.pdf"),
        {
            "type": "document",
            "document": {"link": "https://cdn.example/r.pdf", "filename": "receipt.pdf"},
        },
    ),
    (
        LocationParameter(
            latitude=52.52, longitude=13.405, name="Shop", address="Unter den Linden"
        ),
        {
            "type": "location",
            "location": {
                "latitude": 52.52,
                "longitude": 13.405,
                "name": "Shop",
                "address": "Unter den Linden",
            },
        },
    ),
]
BODY = BodyComponent(
    parameters=[
        TextParameter(text="Ada"),
        CurrencyParameter(fallback_value="$100.99", code="USD", amount_1000=100990),
        DateTimeParameter(fallback_value="February 25, 1977"),
    ]
)
BODY_WIRE = {
    "type": "body",
    "parameters": [
        {"type": "text", "text": "Ada"},
        {
            "type": "currency",
            "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990},
        },
        {"type": "date_time", "date_time": {"fallback_value": "February 25, 1977"}},
    ],
}
BUTTONS = [
    ButtonComponent(sub_type="quick_reply", index=0, parameters=[PayloadParameter(payload="stop")]),
    ButtonComponent(sub_type="url", index="1", parameters=[TextParameter(text="order/42")]),
]
BUTTONS_WIRE = [
    {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "stop"}],
    },
    {
        "type": "button",
        "sub_type": "url",
        "index": "1",
        "parameters": [{"type": "text", "text": "order/42"}],
    },
]


def full_template(header: Any, *, namespace: str | None = NAMESPACE) -> Template:
    return Template(
        name="order_update",
        language="en_US",
        namespace=namespace,
        components=[HeaderComponent(parameters=[header]), BODY, *BUTTONS],
    )


def components_wire(header: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "header", "parameters": [header]}, BODY_WIRE, *BUTTONS_WIRE]


def only_json(fake: FakeDialog360) -> Any:
    assert len(fake.requests) == 1, fake.requests
    return fake.requests[0].json


# -- exact bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "header_wire"), HEADERS)
async def test_cloud_template_body(
    fake: FakeDialog360, cloud: Dialog360Client, header: Any, header_wire: dict[str, Any]
) -> None:
    sent = await cloud.send_template(USER, full_template(header), callback_data="row-1")
    assert only_json(fake) == {
        **CLOUD_HEAD,
        "to": TO,
        "type": "template",
        "template": {  # no namespace on Cloud
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": components_wire(header_wire),
        },
        "biz_opaque_callback_data": "row-1",
    }
    assert sent.message_id.startswith("wamid.")
    assert fake.sends == {TO[1:]: 1}


@pytest.mark.parametrize(("header", "header_wire"), HEADERS)
async def test_onprem_template_body(
    fake: FakeDialog360, onprem: OnPremiseClient, header: Any, header_wire: dict[str, Any]
) -> None:
    message = TemplateMessage(to=USER, template=full_template(header))
    sent = await onprem.send(message)
    assert only_json(fake) == {
        "to": TO,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"policy": "deterministic", "code": "en_US"},
            "components": components_wire(header_wire),
            "namespace": NAMESPACE,
        },
    }
    assert sent.message_id.startswith("gBGH")


async def test_template_without_components(
    fake: FakeDialog360, cloud: Dialog360Client, onprem: OnPremiseClient
) -> None:
    bare = Template(name="hello_world", language="en", namespace=NAMESPACE)
    await cloud.send_template(USER, bare)
    await onprem.send_template(USER, bare)
    assert [r.json["template"] for r in fake.requests] == [
        {"name": "hello_world", "language": {"code": "en"}},
        {
            "name": "hello_world",
            "language": {"policy": "deterministic", "code": "en"},
            "namespace": NAMESPACE,
        },
    ]


async def test_onprem_template_needs_namespace(
    fake: FakeDialog360, onprem: OnPremiseClient, cloud: Dialog360Client
) -> None:
    template = full_template(HEADERS[0][0], namespace=None)
    with pytest.raises(ValidationError, match=r"Template\.namespace: is required by the On-Prem"):
        await onprem.send_template(USER, template)
    assert fake.requests == []
    await cloud.send_template(USER, template)  # Cloud has no namespace to miss
    assert "namespace" not in only_json(fake)["template"]


async def test_text_bodies(
    fake: FakeDialog360, cloud: Dialog360Client, onprem: OnPremiseClient
) -> None:
    fake.engage_all = True
    await cloud.send_text(USER, "See https://example.com", preview_url=True, callback_data="t")
    await onprem.send_text(USER, "Hi Ada")
    await cloud.send(TextMessage(to=USER, body="x" * 4096))
    assert [r.json for r in fake.requests] == [
        {
            **CLOUD_HEAD,
            "to": TO,
            "type": "text",
            "text": {"body": "See https://example.com", "preview_url": True},
            "biz_opaque_callback_data": "t",
        },
        {"to": TO, "type": "text", "text": {"body": "Hi Ada", "preview_url": False}},
        {
            **CLOUD_HEAD,
            "to": TO,
            "type": "text",
            "text": {"body": "x" * 4096, "preview_url": False},
        },
    ]
    assert fake.sends == {TO[1:]: 3}


async def test_send_refuses_what_is_not_a_message(
    fake: FakeDialog360, cloud: Dialog360Client
) -> None:
    with pytest.raises(ValidationError, match="must be a LocationMessage, ContactsMessage, Text"):
        await cloud.send(full_template(HEADERS[0][0]))  # type: ignore[arg-type]
    assert fake.requests == []


# -- models ----------------------------------------------------------------------------------


def test_models_normalize_and_round_trip() -> None:
    button = ButtonComponent(sub_type="url", index="3", parameters=[TextParameter(text="a")])
    assert button.index == 3
    messages = [
        TextMessage(to=USER, body="hi"),
        TemplateMessage(to=USER, template=full_template(HEADERS[4][0])),
        *(TemplateMessage(to=USER, template=full_template(h)) for h, _ in HEADERS[:4]),
    ]
    for message in messages:
        assert message.to == TO
        assert structure(unstructure(message), type(message)) == message
    keys = {message_key(m) for m in messages}
    assert len(keys) == len(messages)
    assert message_key(messages[1]) == message_key(
        TemplateMessage(to=TO, template=full_template(HEADERS[4][0]))
    )


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: TextMessage(to=USER, body=""), "TextMessage.body: must be 1 to 4096"),
        (lambda: TextMessage(to=USER, body="x" * 4097), "got 4097"),
        (lambda: TextMessage(to=USER, body="hi", preview_url="yes"), "preview_url"),
        (lambda: Template(name="Order-Update", language="en_US"), "Template.name"),
        (lambda: Template(name="a" * 513, language="en_US"), "Template.name"),
        (lambda: Template(name="promo", language="english"), "Template.language"),
        (lambda: Template(name="promo", language="en-US"), "Template.language"),
        (lambda: Template(name="promo", language="en", namespace="a b"), "Template.namespace"),
        (lambda: TextParameter(text=" "), "TextParameter.text: must not be empty"),
        (lambda: TextParameter(text="\ud800"), "lone surrogate"),
        (lambda: HeaderComponent(parameters=[TextParameter(text="x" * 61)]), "at most 60"),
        (lambda: HeaderComponent(parameters=[]), "exactly 1 parameter, got 0"),
        (lambda: HeaderComponent(parameters=[PayloadParameter(payload="p")]), "parameters[0]"),
        (lambda: BodyComponent(parameters=[]), "at least 1 parameter"),
        (lambda: BodyComponent(parameters=[ImageParameter(id="1")]), "parameters[0]"),
        (lambda: BodyComponent(parameters=[TextParameter(text="x" * 1025)]), "at most 1024"),
        (lambda: BodyComponent(parameters=TextParameter(text="x")), "must be a list"),
        (
            lambda: ButtonComponent(
                sub_type="call", index=0, parameters=[PayloadParameter(payload="p")]
            ),
            "ButtonComponent.sub_type",
        ),
        (
            lambda: ButtonComponent(sub_type="url", index=10, parameters=[TextParameter(text="p")]),
            "ButtonComponent.index: must be an integer in 0..9",
        ),
        (
            lambda: ButtonComponent(
                sub_type="url", index=True, parameters=[TextParameter(text="p")]
            ),
            "ButtonComponent.index",
        ),
        (
            lambda: ButtonComponent(
                sub_type="url", index=0, parameters=[PayloadParameter(payload="p")]
            ),
            "a url button takes exactly 1 TextParameter",
        ),
        (
            lambda: CurrencyParameter(fallback_value="$1", code="usd", amount_1000=1000),
            "CurrencyParameter.code",
        ),
        (
            lambda: CurrencyParameter(fallback_value="$1", code="USD", amount_1000=1.5),
            "amount_1000",
        ),
        (lambda: DateTimeParameter(fallback_value=""), "must not be empty"),
        (lambda: LocationParameter(latitude=91, longitude=0), "LocationParameter.latitude"),
        (lambda: LocationParameter(latitude=0, longitude=math.nan), "finite"),
        (lambda: ImageParameter(link="http://cdn.example/a.png"), "https:// URL"),
        (lambda: ImageParameter(link="https://"), "https:// URL"),
        (lambda: ImageParameter(link="https://a.example/x y"), "https:// URL"),
        (lambda: VideoParameter(), "exactly one of link and id"),
        (lambda: DocumentParameter(link="https://a.example/x", id="1"), "exactly one"),
        (lambda: PayloadParameter(payload=1), "must be a string"),
        (
            lambda: Template(name="promo", language="en", components=[BODY, BODY]),
            "at most one BodyComponent",
        ),
        (
            lambda: Template(name="promo", language="en", components=[BUTTONS[0], BUTTONS[0]]),
            "repeat a button index",
        ),
        (lambda: Template(name="promo", language="en", components=[BODY_WIRE]), "components[0]"),
        (lambda: TemplateMessage(to=USER, template="promo"), "must be a Template"),
        (
            lambda: TemplateMessage(to="nobody", template=Template(name="promo", language="en")),
            "to:",
        ),
    ],
)
def test_bad_input_raises_validation_error(build: Callable[[], object], error: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert error in str(info.value)


# -- Hypothesis: bad input never reaches the wire ---------------------------------------------

_NAME_OK = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE_OK = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
Attempt = Callable[[Dialog360Client, OnPremiseClient], Awaitable[object]]


def _template_with(
    components: Callable[[], list[Any]] = list, **fields: Any
) -> Callable[[], Template]:
    """Builds the template only when called: inside the send attempt."""
    base: dict[str, Any] = {"name": "order_update", "language": "en_US", "namespace": NAMESPACE}
    return lambda: Template(**{**base, **fields}, components=components())


def _with_header(parameter: Callable[[], Any]) -> Callable[[], Template]:
    return lambda: full_template(parameter())


_BAD_TEMPLATES: st.SearchStrategy[Callable[[], Template]] = st.one_of(
    st.text(max_size=20)
    .filter(lambda s: not _NAME_OK.fullmatch(s))
    .map(lambda s: _template_with(name=s)),
    st.text(max_size=8)
    .filter(lambda s: not _LANGUAGE_OK.fullmatch(s))
    .map(lambda s: _template_with(language=s)),
    st.one_of(st.integers(), st.none(), st.binary()).map(lambda x: _template_with(name=x)),
    st.text(min_size=61, max_size=80)
    .filter(str.strip)
    .map(lambda s: _with_header(lambda: TextParameter(text=s))),
    st.text(alphabet=" \t\n", max_size=5).map(
        lambda s: _with_header(lambda: TextParameter(text=s))
    ),
    st.one_of(st.floats(), st.booleans(), st.integers(min_value=2**63)).map(
        lambda x: _with_header(
            lambda: CurrencyParameter(fallback_value="$1", code="USD", amount_1000=x)
        )
    ),
    st.text(max_size=5)
    .filter(lambda s: not re.fullmatch(r"[A-Z]{3}", s))
    .map(
        lambda s: _with_header(
            lambda: CurrencyParameter(fallback_value="$1", code=s, amount_1000=1)
        )
    ),
    st.one_of(
        st.floats(min_value=90, exclude_min=True), st.floats(max_value=-90, exclude_max=True)
    ).map(lambda x: _with_header(lambda: LocationParameter(latitude=x, longitude=0))),
    st.sampled_from(["http://cdn.example/a.png", "ftp://cdn.example/a", "cdn.example/a", ""]).map(
        lambda link: _with_header(lambda: ImageParameter(link=link))
    ),
    st.one_of(
        st.integers().filter(lambda n: not 0 <= n <= 9),
        st.text(max_size=3).filter(lambda s: s not in set("0123456789")),
    ).map(
        lambda i: _template_with(
            lambda: [ButtonComponent(sub_type="url", index=i, parameters=[TextParameter(text="a")])]
        )
    ),
    st.text(max_size=12)
    .filter(lambda s: s not in ("quick_reply", "url"))
    .map(
        lambda s: _template_with(
            lambda: [
                ButtonComponent(sub_type=s, index=0, parameters=[PayloadParameter(payload="a")])
            ]
        )
    ),
    st.integers(min_value=2, max_value=3).map(lambda n: _template_with(lambda: [BODY] * n)),
    st.integers(min_value=2, max_value=4).map(
        lambda n: _template_with(
            lambda: [HeaderComponent(parameters=[TextParameter(text="a")] * n)]
        )
    ),
)


def _sends(make: Callable[[], Template]) -> st.SearchStrategy[Attempt]:
    return st.sampled_from(
        [
            lambda cloud, _: cloud.send_template(USER, make()),
            lambda _, onprem: onprem.send_template(USER, make()),
            lambda cloud, _: cloud.send(TemplateMessage(to=USER, template=make())),
        ]
    )


_ATTEMPTS: st.SearchStrategy[Attempt] = st.one_of(
    _BAD_TEMPLATES.flatmap(_sends),
    st.text(min_size=4097, max_size=4200).map(
        lambda body: lambda cloud, _: cloud.send_text(USER, body)
    ),
    st.sampled_from(["", "\ud800", None, 42]).map(
        lambda body: lambda _, onprem: onprem.send_text(USER, body)
    ),
    st.sampled_from(["nobody", "", "+1", "1" * 21]).map(
        lambda to: lambda cloud, _: cloud.send_template(to, full_template(HEADERS[0][0]))
    ),
    st.just(
        lambda _, onprem: onprem.send_template(USER, full_template(HEADERS[0][0], namespace=None))
    ),
    st.just(
        lambda _, onprem: onprem.send_template(
            USER,
            Template(name="promo", language="en"),  # no namespace
        )
    ),
)


def test_invalid_template_input_raises_and_sends_nothing() -> None:
    with asyncio.Runner() as runner:
        fake = FakeDialog360(api_keys=[API_KEY], engage_all=True, throughput=None)
        runner.run(fake.start())
        cloud = Dialog360Client(API_KEY, base_url=fake.url, retry=None)
        onprem = OnPremiseClient(API_KEY, base_url=fake.url, retry=None)
        try:

            @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(attempt=_ATTEMPTS)
            def check(attempt: Attempt) -> None:
                async def run() -> None:
                    await attempt(cloud, onprem)

                with pytest.raises(ValidationError):
                    runner.run(run())
                assert len(fake.requests) == 0
                assert fake.stats()["requests"]["total"] == 0

            check()
            # The same clients do reach the fake with valid input: the zero above is real.
            runner.run(cloud.send_template(USER, full_template(HEADERS[0][0])))
            assert len(fake.requests) == 1
        finally:
            runner.run(cloud.close())
            runner.run(onprem.close())
            runner.run(fake.close())


# -- JSONL input -----------------------------------------------------------------------------


def _jsonl(tmp_path: Path, *lines: object) -> MessageSource:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return MessageSource(str(path))


def test_jsonl_text_and_template_lines(tmp_path: Path) -> None:
    template = full_template(HEADERS[4][0])
    wire = unstructure(TemplateMessage(to=USER, template=template))
    lines = [
        {"to": USER, "text": {"body": "hi"}},
        {
            **CLOUD_HEAD,
            "to": "15550002",
            "type": "text",
            "text": {"body": "yo", "preview_url": True},
        },
        {**wire, "key": "tpl-1"},
        {
            "to": "15550003",
            "template": {
                "name": "hello_world",
                "language": {"policy": "deterministic", "code": "en"},
                "namespace": NAMESPACE,
            },
        },
    ]
    with _jsonl(tmp_path, *lines) as source:
        assert source.validate() == 4
        rows = list(source)
    assert [r.message for r in rows] == [
        TextMessage(to=USER, body="hi"),
        TextMessage(to="15550002", body="yo", preview_url=True),
        TemplateMessage(to=USER, template=template),
        TemplateMessage(
            to="15550003", template=Template(name="hello_world", language="en", namespace=NAMESPACE)
        ),
    ]
    assert rows[2].key == "tpl-1"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ({"to": USER, "type": "text"}, "$: missing 'text'"),
        ({"to": USER, "text": {"body": "hi", "preview": True}}, "$.text: unknown key 'preview'"),
        ({"to": USER, "text": {}}, "$.text: missing 'body'"),
        ({"to": USER, "text": {"body": 5}}, "TextMessage.body: must be a string"),
        ({"to": USER, "template": {"name": "promo"}}, "$.template: missing 'language'"),
        (
            {"to": USER, "template": {"name": "promo", "language": {"code": "en", "policy": "x"}}},
            "$.template.language.policy: must be 'deterministic'",
        ),
        (
            {"to": USER, "template": {"name": "promo", "language": {"code": "en"}, "extra": 1}},
            "$.template: unknown key 'extra'",
        ),
        (
            {
                "to": USER,
                "template": {
                    "name": "promo",
                    "language": {"code": "en"},
                    "components": [{"type": "footer", "parameters": []}],
                },
            },
            "$.template.components[0].type: must be one of header, body, button",
        ),
        (
            {
                "to": USER,
                "template": {
                    "name": "promo",
                    "language": {"code": "en"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "txt": "a"}]}],
                },
            },
            "$.template.components[0].parameters[0]: unknown key 'txt'",
        ),
        (
            {
                "to": USER,
                "template": {
                    "name": "promo",
                    "language": {"code": "en"},
                    "components": [
                        {"type": "header", "parameters": [{"type": "image", "image": {}}]}
                    ],
                },
            },
            "ImageParameter: needs exactly one of link and id",
        ),
        ({"to": USER, "type": "image", "image": {}}, '$.type: must be "location", "contacts"'),
    ],
)
def test_bad_jsonl_text_or_template_line(tmp_path: Path, line: object, error: str) -> None:
    with _jsonl(tmp_path, {"to": USER, "text": {"body": "ok"}}, line) as source:
        with pytest.raises(InputError) as info:
            source.validate()
    assert str(info.value).startswith(f"{tmp_path / 'in.jsonl'}:2: ")
    assert error in str(info.value)


# -- a template broadcast ---------------------------------------------------------------------


async def test_bulk_broadcast_of_template_messages(fake: FakeDialog360) -> None:
    fake.add_template("weekly_offer", "de", body_params=1, header="location")
    where = Location(latitude=52.52, longitude=13.405, name="Shop")

    def offer(n: int, *, params: int = 1) -> TemplateMessage:
        body = BodyComponent(parameters=[TextParameter(text=f"user {n}")] * params)
        header = HeaderComponent(
            parameters=[LocationParameter(latitude=where.latitude, longitude=where.longitude)]
        )
        template = Template(name="weekly_offer", language="de", components=[header, body])
        return TemplateMessage(to=f"+1555{n:07d}", template=template)

    messages = [offer(n) for n in range(30)] + [offer(30, params=2)]
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        sender = BulkSender(client, concurrency=4, rate_limit=None)
        outcomes = [o async for o in sender.run(messages)]
    assert sorted(o.status for o in outcomes) == ["failed"] + ["sent"] * 30
    [failed] = [o for o in outcomes if not o.ok]
    assert failed.message == messages[-1]
    assert isinstance(failed.error, APIError)
    assert failed.error.code == 132000
    # None of them needed the 24-hour window (engage_all is off): they are templates.
    assert fake.sends == {m.to[1:]: 1 for m in messages[:30]}
    assert {r.json["template"]["name"] for r in fake.requests} == {"weekly_offer"}
