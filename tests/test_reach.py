"""Reach beyond the 24-hour window, end to end against the fake and a real receiver on
127.0.0.1: the campaign policy turns later failures into the store's suppression list and
deferrals, later broadcasts honour them, the window tracker skips or converts free-form messages
to users who have not written, and a paused template halts only itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from dialog360_async import (
    BodyComponent,
    BroadcastStore,
    BulkSender,
    CampaignPolicy,
    Dialog360Client,
    LocationMessage,
    Message,
    Outcome,
    SuppressedError,
    Template,
    TemplateHaltedError,
    TemplateMessage,
    TextParameter,
    WindowClosedError,
)
from dialog360_async.testing import FakeDialog360, WebhookPlan

from .test_bulk import HQ, number
from .test_e2e_delivery import receiving

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

DAY = 86_400.0
KEY = "reach-key"
PROMO = Template(
    name="promo", language="en", components=[BodyComponent(parameters=[TextParameter(text="10%")])]
)
NEWS = Template(name="news", language="en")
WHERE = Template(name="where_we_are", language="en")


def promo(to: str) -> TemplateMessage:
    return TemplateMessage(to=to, template=PROMO)


def fake_for(url: str, **plan: object) -> FakeDialog360:
    fake = FakeDialog360(
        api_keys=(KEY,),
        throughput=None,
        record_requests=False,
        webhook_url=url,
        webhooks=WebhookPlan(seed=13, **plan),  # type: ignore[arg-type]
    )
    fake.add_template("promo", "en", body_params=1)
    fake.add_template("news", "en")
    fake.add_template("where_we_are", "en")
    return fake


async def broadcast(
    fake: FakeDialog360,
    store: BroadcastStore,
    items: Sequence[Message],
    campaign: str,
    **options: object,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    async with Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as client:
        sender = BulkSender(
            client,
            concurrency=32,
            rate_limit=None,
            journal=store,
            on_outcome=outcomes.append,
            **options,  # type: ignore[arg-type]
        )
        await asyncio.wait_for(sender.send_all(items, campaign=campaign), 120)
    await asyncio.wait_for(fake.webhooks_idle(), 60)
    return outcomes


@contextlib.asynccontextmanager
async def cold_list(
    tmp_path: Path, total: int, wrote: Callable[[int], bool]
) -> AsyncIterator[tuple[BroadcastStore, FakeDialog360, list[Message]]]:
    """Locations to ``total`` users, of whom those that ``wrote`` have an open window."""
    async with BroadcastStore(tmp_path / "reach.db") as store, receiving(store) as (url, _):
        async with fake_for(url) as fake:
            for n in filter(wrote, range(total)):
                fake.user_writes(number(n), "hi", api_key=KEY)
            await asyncio.wait_for(fake.webhooks_idle(), 30)
            yield store, fake, [LocationMessage(to=number(n), location=HQ) for n in range(total)]


async def test_5000_templates_with_later_failures_fill_the_suppression_list(
    tmp_path: Path,
) -> None:
    total = 5000
    fates = {
        131050: range(0, total, 100),
        131049: range(33, total, 100),
        131026: range(66, total, 100),
    }
    async with BroadcastStore(tmp_path / "reach.db") as store, receiving(store) as (url, _):
        async with fake_for(url, shuffle=True, max_batch=50, duplicate_ratio=0.05) as fake:
            for code, numbers in fates.items():
                for n in numbers:
                    fake.fate(number(n), "failed", code=code)
            recipients = [number(n) for n in range(total)]
            first = await broadcast(fake, store, [promo(to) for to in recipients], "promo")
            failed_later = Counter(fake.delivery.failures())
            entries = {e.recipient: e for e in store.suppressions}

            # A second broadcast to the same list: nothing goes to the suppressed or deferred.
            fake.reset()
            news = [TemplateMessage(to=to, template=NEWS) for to in recipients]
            second = await broadcast(fake, store, news, "news")
            sends = fake.stats(by_recipient=True)["sends"]

    assert Counter(o.status for o in first) == {"sent": total}
    assert failed_later == {131050: 50, 131049: 50, 131026: 50}  # 3 % fail after the 200
    digits = {code: {number(n)[1:] for n in numbers} for code, numbers in fates.items()}
    suppressed = {r for r, e in entries.items() if e.until is None}
    assert suppressed == digits[131050] | digits[131026]  # exactly those recipients
    assert {r for r, e in entries.items() if e.code == 131050} == digits[131050]
    assert all(entries[r].scope == "marketing" for r in digits[131050])
    assert all(entries[r].scope == "all" for r in digits[131026])
    deferred = {r: e for r, e in entries.items() if e.until is not None}
    assert set(deferred) == digits[131049]
    for entry in deferred.values():  # deferred 24 h from the failed status's own time
        assert entry.code == 131049 and entry.until == pytest.approx(entry.at + DAY)

    kept = [o for o in second if o.status == "skipped"]
    assert len(kept) == 150 and all(isinstance(o.error, SuppressedError) for o in kept)
    assert {o.message.to for o in kept if "deferred until" in str(o.error)} == {
        number(n) for n in fates[131049]
    }
    stopped = [o for o in kept if getattr(o.error, "code", None) == 131050]
    assert len(stopped) == 50
    assert all(str(o.error).startswith("suppressed: 131050") for o in stopped)
    assert Counter(o.status for o in second) == {"sent": total - 150, "skipped": 150}
    never = {to[1:] for to in (number(n) for ns in fates.values() for n in ns)}
    assert not never & set(sends.get("by_recipient", {}))  # the fake saw none of them again
    assert sends["total"] == total - 150


async def test_a_utility_campaign_still_reaches_users_who_stopped_marketing(
    tmp_path: Path,
) -> None:
    async with BroadcastStore(tmp_path / "reach.db") as store:
        store.suppressions.add(number(1), code=131050, scope="marketing", reason="stopped")
        store.suppressions.add(number(2), code=131026, reason="undeliverable")
        async with fake_for("http://127.0.0.1:9/unused") as fake:
            items: list[Message] = [promo(number(n)) for n in (1, 2, 3)]
            policy = CampaignPolicy(marketing=False)
            utility = await broadcast(fake, store, items, "utility", policy=policy)
            marketing = await broadcast(fake, store, items, "marketing")
    # The entry for marketing only: a utility campaign sends to them, a marketing one does not.
    assert {o.message.to: o.status for o in utility} == {
        number(1): "sent",
        number(2): "skipped",
        number(3): "sent",
    }
    assert {o.message.to: o.status for o in marketing} == {
        number(1): "skipped",
        number(2): "skipped",
        number(3): "sent",
    }


async def test_a_user_who_writes_again_is_lifted_when_the_policy_says_so(tmp_path: Path) -> None:
    async with BroadcastStore(tmp_path / "reach.db") as store, receiving(store) as (url, _):
        async with fake_for(url) as fake:
            fake.fate(number(1), "failed", code=131026)  # undeliverable: lifts on a reply
            fake.fate(number(2), "failed", code=131050)  # stopped marketing: writing is no opt-in
            await broadcast(fake, store, [promo(number(1)), promo(number(2))], "promo")
            before = {e.recipient for e in store.suppressions}
            for n in (1, 2):
                fake.user_writes(number(n), "hello again")
            await asyncio.wait_for(fake.webhooks_idle(), 30)
            after = {e.recipient for e in store.suppressions}
    assert before == {number(1)[1:], number(2)[1:]}
    assert after == {number(2)[1:]}


async def test_outside_window_skip_pays_for_no_certain_131047(tmp_path: Path) -> None:
    total = 400
    wrote = {n for n in range(total) if n % 3 == 0}
    async with cold_list(tmp_path, total, wrote.__contains__) as (store, fake, items):
        outcomes = await broadcast(fake, store, items, "cold", outside_window="skip")
        failures = fake.delivery.failures()
    status = Counter(o.status for o in outcomes)
    assert status == {"sent": len(wrote), "skipped": total - len(wrote)}
    skipped = {o.message.to for o in outcomes if o.status == "skipped"}
    assert skipped == {number(n) for n in range(total) if n not in wrote}
    assert all(isinstance(o.error, WindowClosedError) for o in outcomes if o.status == "skipped")
    assert failures.get(131047, 0) == 0  # not one send the fake failed for a closed window


async def test_a_converter_sends_the_template_to_every_closed_window(tmp_path: Path) -> None:
    total = 300
    wrote = {n for n in range(total) if n % 4 == 0}

    def as_template(message: Message) -> TemplateMessage:
        return TemplateMessage(to=message.to, template=WHERE)

    async with cold_list(tmp_path, total, wrote.__contains__) as (store, fake, items):
        outcomes = await broadcast(fake, store, items, "cold", outside_window=as_template)
        failures = fake.delivery.failures()
    assert Counter(o.status for o in outcomes) == {"sent": total}
    converted = {o.message.to for o in outcomes if o.sent_as is not None}
    assert converted == {number(n) for n in range(total) if n not in wrote}
    assert all(
        isinstance(o.sent_as, TemplateMessage) and o.sent_as.template == WHERE
        for o in outcomes
        if o.sent_as is not None
    )
    assert failures.get(131047, 0) == 0


async def test_halting_one_template_leaves_the_others_and_other_channels_going(
    tmp_path: Path,
) -> None:
    other = "reach-key-2"
    async with BroadcastStore(tmp_path / "reach.db") as store:
        fake = FakeDialog360(api_keys=(KEY, other), throughput=None, record_requests=False)
        fake.add_template("promo", "en", body_params=1)
        fake.add_template("news", "en")
        async with fake:
            fake.set_template_status("promo", "en", "PAUSED")
            one = Dialog360Client(KEY, base_url=fake.url, rate_limit=None)
            two = Dialog360Client(other, base_url=fake.url, rate_limit=None)
            items = []
            for n in range(200):
                items.append((one, promo(number(n))))
                items.append((one, TemplateMessage(to=number(n), template=NEWS)))
                items.append((two, TemplateMessage(to=number(1000 + n), template=NEWS)))
            outcomes: list[Outcome] = []
            async with one, two:
                sender = BulkSender(
                    concurrency=4, rate_limit=None, journal=store, on_outcome=outcomes.append
                )
                await asyncio.wait_for(sender.send_all(items), 60)
            sends = fake.stats()["sends"]["total"]
    promos = [o for o in outcomes if o.message.template.name == "promo"]  # type: ignore[union-attr]
    news = [o for o in outcomes if o.message.template.name == "news"]  # type: ignore[union-attr]
    assert Counter(o.status for o in news) == {"sent": 400}  # the other template, both channels
    failed = [o for o in promos if o.status == "failed"]
    assert 1 <= len(failed) <= 4  # only the sends already under way when the halt came
    assert all(getattr(o.error, "code", None) == 132015 for o in failed)
    halted = [o for o in promos if o.status == "cancelled"]
    assert len(halted) == 200 - len(failed)
    assert all(isinstance(o.error, TemplateHaltedError) for o in halted)
    assert sends == 400  # the fake accepted every news send and no promo
