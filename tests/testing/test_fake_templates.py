"""The fake's templates: the registry (132001, 132000, 132012, 132015, 132016 at send time),
template body shapes, text sends and the 24-hour window, and template fates in webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from dialog360_async import (
    APIError,
    BodyComponent,
    ButtonComponent,
    Dialog360Client,
    HeaderComponent,
    ImageParameter,
    OnPremiseClient,
    PayloadParameter,
    Template,
    TextParameter,
)
from dialog360_async.testing import FakeDialog360, WebhookPlan

if TYPE_CHECKING:
    from tests.testing.conftest import Receiver, Wire

KEY = "secret-key-1"
USER = "+15550001"
NAMESPACE = "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574"
LADDER = ["sent", "delivered", "read"]


@pytest.fixture
async def clients(fake: FakeDialog360) -> AsyncIterator[tuple[Dialog360Client, OnPremiseClient]]:
    async with (
        Dialog360Client(KEY, base_url=fake.url, retry=None, rate_limit=None) as cloud,
        OnPremiseClient(KEY, base_url=fake.url, retry=None, rate_limit=None) as onprem,
    ):
        yield cloud, onprem


def order(
    *,
    name: str = "order_update",
    language: str = "en_US",
    body: int = 1,
    header: Any = None,
    buttons: tuple[ButtonComponent, ...] = (),
) -> Template:
    components: list[Any] = [] if header is None else [HeaderComponent(parameters=[header])]
    if body:
        components.append(BodyComponent(parameters=[TextParameter(text="Ada")] * body))
    return Template(
        name=name,
        language=language,
        namespace=NAMESPACE,
        components=[*components, *buttons],
    )


QUICK = ButtonComponent(
    sub_type="quick_reply", index=0, parameters=[PayloadParameter(payload="no")]
)
URL = ButtonComponent(sub_type="url", index=1, parameters=[TextParameter(text="42")])
URL_AT_0 = ButtonComponent(sub_type="url", index=0, parameters=[TextParameter(text="x")])
URL_AT_2 = ButtonComponent(sub_type="url", index=2, parameters=[TextParameter(text="x")])
IMAGE = ImageParameter(link="https://cdn.example/a.png")


async def refused(client: Dialog360Client | OnPremiseClient, template: Template) -> tuple[int, str]:
    with pytest.raises(APIError) as info:
        await client.send_template(USER, template)
    assert info.value.status == 400
    return info.value.code or 0, info.value.details or ""


async def test_any_template_until_one_is_registered(
    fake: FakeDialog360, clients: tuple[Dialog360Client, OnPremiseClient]
) -> None:
    cloud, onprem = clients
    await cloud.send_template(USER, order(name="anything"))
    await onprem.send_template(USER, order(name="anything"))
    fake.add_template("order_update", "en_US", body_params=1)
    for client in clients:
        assert await refused(client, order(name="anything")) == (
            132001,
            "template name (anything) does not exist in en_US",
        )
    assert fake.sends == {"15550001": 2}  # the refused sends are not counted


async def test_registry_checks_every_part(
    fake: FakeDialog360, clients: tuple[Dialog360Client, OnPremiseClient]
) -> None:
    fake.add_template(
        "order_update", "en_US", body_params=2, header="image", buttons=("quick_reply", "url")
    )
    good = order(body=2, header=IMAGE, buttons=(QUICK, URL))
    cases = [
        (order(language="de", body=2, header=IMAGE, buttons=(URL,)), 132001, "in de"),
        (order(body=1, header=IMAGE, buttons=(URL,)), 132000, "body: expected 2, got 1"),
        (order(body=0, header=IMAGE, buttons=(URL,)), 132000, "body: expected 2, got 0"),
        (order(body=2, buttons=(URL,)), 132000, "header: expected 1, got 0"),
        (
            order(body=2, header=TextParameter(text="Hi"), buttons=(URL,)),
            132012,
            "header: expected image, got text",
        ),
        (order(body=2, header=IMAGE, buttons=(QUICK,)), 132000, "button 1: its url variable"),
        (
            order(body=2, header=IMAGE, buttons=(URL_AT_0, URL)),
            132012,
            "button 0: expected quick_reply",
        ),
        (
            order(body=2, header=IMAGE, buttons=(URL, URL_AT_2)),
            132000,
            "button 2: not a button",
        ),
    ]
    for client in clients:
        for template, code, details in cases:
            found = await refused(client, template)
            assert found[0] == code, (template, found)
            assert details in found[1], (template, found)
        await client.send_template(USER, good)
        await client.send_template(USER, order(body=2, header=IMAGE, buttons=(URL,)))
    assert fake.sends == {"15550001": 4}


async def test_paused_disabled_and_approved_again(
    fake: FakeDialog360, clients: tuple[Dialog360Client, OnPremiseClient]
) -> None:
    cloud, onprem = clients
    spec = fake.add_template("order_update", "en_US", body_params=1, category="UTILITY")
    assert fake.templates == {("order_update", "en_US"): spec}
    assert (spec.status, spec.category) == ("APPROVED", "UTILITY")
    await cloud.send_template(USER, order())
    fake.set_template_status("order_update", "en_US", "PAUSED")
    for client in clients:
        assert (await refused(client, order()))[0] == 132015
    fake.set_template_status("order_update", "en_US", "DISABLED")
    for client in clients:
        assert (await refused(client, order()))[0] == 132016
    fake.set_template_status("order_update", "en_US", "APPROVED")
    await onprem.send_template(USER, order())
    fake.add_template("later", "en_US", status="PENDING")
    assert (await refused(cloud, order(name="later", body=0)))[0] == 132001
    assert fake.sends == {"15550001": 2}
    assert fake.stats()["responses"]["by_status"] == {"200": 1, "201": 1, "400": 5}


def test_registry_refuses_bad_specs(fake: FakeDialog360) -> None:
    with pytest.raises(ValueError, match="header must be None or one of"):
        fake.add_template("promo", "en", header="audio")
    with pytest.raises(ValueError, match="body_params"):
        fake.add_template("promo", "en", body_params=-1)
    with pytest.raises(ValueError, match="buttons"):
        fake.add_template("promo", "en", buttons=("call",))
    with pytest.raises(ValueError, match="status"):
        fake.add_template("promo", "en", status="LIVE")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="add_template"):
        fake.set_template_status("promo", "en", "PAUSED")
    assert fake.templates == {}


# -- shapes -----------------------------------------------------------------------------------


def _template_body(components: Any, *, cloud: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to": USER,
        "type": "template",
        "template": {"name": "promo", "language": {"code": "en"}, "components": components},
    }
    if cloud:
        body["messaging_product"] = "whatsapp"
    else:
        body["template"]["namespace"] = NAMESPACE
        body["template"]["language"]["policy"] = "deterministic"
    return body


@pytest.mark.parametrize(
    ("components", "details"),
    [
        ([{"type": "footer"}], "components[0].type must be one of header, body, button"),
        ([{"type": "body", "parameters": {}}], "parameters must be a list"),
        ([{"type": "body", "parameters": [{"type": "emoji"}]}], "parameters[0].type must be"),
        ([{"type": "body", "parameters": [{"type": "text", "text": ""}]}], "non-empty string"),
        (
            [{"type": "body", "parameters": [{"type": "currency", "currency": {}}]}],
            "fallback_value is required",
        ),
        (
            [{"type": "header", "parameters": [{"type": "image", "image": {}}]}],
            "exactly one of link and id",
        ),
        (
            [{"type": "header", "parameters": [{"type": "video", "video": {"link": "http://a"}}]}],
            "https URL",
        ),
        (
            [
                {
                    "type": "header",
                    "parameters": [
                        {"type": "location", "location": {"latitude": 91, "longitude": 0}}
                    ],
                }
            ],
            "latitude must be between",
        ),
        ([{"type": "button", "sub_type": "call", "index": "0"}], "sub_type must be"),
        ([{"type": "button", "sub_type": "url", "index": 0}], "index must be a button position"),
    ],
)
async def test_template_shapes_are_checked(wire: Wire, components: Any, details: str) -> None:
    status, body = await wire.call("POST", "/messages", json=_template_body(components))
    missing = "is required" in body["error"]["error_data"]["details"]
    assert (status, body["error"]["code"]) == (400, 131008 if missing else 100)
    assert details in body["error"]["error_data"]["details"]
    status, body = await wire.call(
        "POST", "/v1/messages", json=_template_body(components, cloud=False)
    )
    assert (status, body["errors"][0]["code"]) == (400, 1009)
    assert details in body["errors"][0]["details"]
    assert wire.fake.sends == {}


async def test_text_preview_url_must_be_a_boolean(wire: Wire) -> None:
    text = {"messaging_product": "whatsapp", "to": USER, "type": "text"}
    status, body = await wire.call(
        "POST", "/messages", json={**text, "text": {"body": "hi", "preview_url": "yes"}}
    )
    assert (status, body["error"]["code"]) == (400, 100)
    status, _ = await wire.call(
        "POST", "/messages", json={**text, "text": {"body": "hi", "preview_url": True}}
    )
    assert status == 200


# -- the window and fates in webhooks ----------------------------------------------------------


async def _idle(fake: FakeDialog360) -> None:
    await asyncio.wait_for(fake.webhooks_idle(), 10)


async def test_text_needs_the_window_and_a_template_does_not(receiver: Receiver) -> None:
    async with FakeDialog360(webhook_url=receiver.url, webhooks=WebhookPlan()) as fake:
        async with (
            Dialog360Client(KEY, base_url=fake.url, retry=None, rate_limit=None) as cloud,
            OnPremiseClient(KEY, base_url=fake.url, retry=None, rate_limit=None) as onprem,
        ):
            cold = await cloud.send_text(USER, "hi")  # HTTP 200: refused later, by webhook
            cold_onprem = await onprem.send_text(USER, "hi")
            promo = await cloud.send_template(USER, order())
            fake.user_writes(USER, "hello", api_key=KEY)
            warm = await cloud.send_text(USER, "welcome back")
            await _idle(fake)
    seen = receiver.by_message()
    assert seen[cold.message_id] == ["failed"]
    assert seen[cold_onprem.message_id] == ["failed"]
    assert seen[promo.message_id] == LADDER
    assert seen[warm.message_id] == LADDER
    assert fake.delivery.failures() == {131047: 1, 470: 1}


async def test_template_fates_fail_later_with_the_given_codes(receiver: Receiver) -> None:
    async with FakeDialog360(webhook_url=receiver.url) as fake:
        fake.add_template("order_update", "en_US", body_params=1)
        fake.fate("+15550002", "failed", code=132015)  # paused by pacing after the 200
        fake.fate("+15550003", "failed", code=131049)  # the per-user marketing limit
        async with Dialog360Client(KEY, base_url=fake.url, retry=None, rate_limit=None) as c:
            paced = await c.send_template("+15550002", order(), callback_data="row-2")
            capped = await c.send_template("+15550003", order())
            fine = await c.send_template(USER, order())
        await _idle(fake)
    seen = receiver.by_message()
    assert seen[paced.message_id] == ["sent", "failed"]
    assert seen[capped.message_id] == ["sent", "failed"]
    assert seen[fine.message_id] == LADDER
    failed = {s["id"]: s for s in receiver.statuses() if s["status"] == "failed"}
    assert [e["code"] for e in failed[paced.message_id]["errors"]] == [132015]
    assert [e["code"] for e in failed[capped.message_id]["errors"]] == [131049]
    assert failed[paced.message_id]["biz_opaque_callback_data"] == "row-2"
    assert fake.delivery.failures() == {132015: 1, 131049: 1}
