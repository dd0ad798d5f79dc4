"""CampaignPolicy and the store's reach state, rule by rule: validation, the suppression list,
deferrals that end, windows from inbound messages, the policy a receiver in another store
object applies, the 131047 fallback and halts by code."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dialog360_async import (
    APIError,
    BroadcastStore,
    BulkSender,
    CampaignPolicy,
    Dialog360Client,
    LocationMessage,
    Message,
    OnPremiseClient,
    Outcome,
    SuppressedError,
    Template,
    TemplateMessage,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360
from dialog360_async.webhooks import InboundMessage, Notification, StatusUpdate
from dialog360_async.webhooks._models import ErrorDetail

from .test_bulk import HQ, number

DAY = 86_400.0
T0 = 1_800_000_000.0
WHERE = Template(name="where_we_are", language="en", namespace="ns-1")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def failed(wamid: str, code: int, at: float = T0) -> Notification:
    error = ErrorDetail(code=code, message=f"title {code}")
    status = StatusUpdate(message_id=wamid, status="failed", timestamp=int(at), errors=(error,))
    return Notification(statuses=(status,))


def wrote(wa_id: str, at: float, message_id: str = "in-1") -> Notification:
    inbound = InboundMessage(message_id=message_id, wa_id=wa_id, type="text", timestamp=int(at))
    return Notification(messages=(inbound,))


async def sent(store: BroadcastStore, campaign: str, policy: CampaignPolicy | None = None) -> None:
    """Three sends of ``campaign``: numbers 1 to 3, wamids w1 to w3."""
    store.begin(campaign, policy=policy)
    for n in (1, 2, 3):
        assert await store.claim_message(f"k{n}", to=number(n), channel="c") is None
        await store.settle(f"k{n}", "sent", message_id=f"{campaign}-w{n}")
    store.finish()


# -- the policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("marketing", "yes"),
        ("suppress", 131026),
        ("suppress", "131026"),
        ("suppress", [131026, "x"]),
        ("suppress_marketing", [-1]),
        ("halt_channel", [True]),
        ("halt_template", None),
        ("defer", [131049]),
        ("defer", {131049: 0}),
        ("defer", {131049: float("inf")}),
        ("defer", {"131049": 60}),
        ("fallback", "template"),
        ("window_codes", {1.5}),
        ("lift_on_reply", object()),
    ],
)
def test_every_rule_is_checked_at_construction(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        CampaignPolicy(**{field: value})
    assert caught.value.field == f"CampaignPolicy.{field}"


def test_defaults_follow_the_facts_and_every_rule_can_be_overridden() -> None:
    policy = CampaignPolicy()
    assert policy.entry(131026) == ("all", None)
    assert policy.entry(131050) == ("marketing", None)
    assert policy.entry(130472) == ("marketing", None)
    assert policy.entry(131049) == ("all", DAY)
    assert policy.entry(131000) is None
    assert {131031, 368, 131042} <= policy.halt_channel
    assert {132015, 132016} == policy.halt_template
    assert CampaignPolicy(marketing=False).entry(131050) is None  # utility: no marketing rule
    custom = CampaignPolicy(suppress={131000}, defer={131049: 3600, 131026: 60})
    assert custom.entry(131000) == ("all", None)
    assert custom.entry(131026) == ("all", 60.0)  # no longer suppressed for good
    assert custom.entry(131049) == ("all", 3600.0)


def test_the_kept_record_reads_back_and_garbage_reads_as_the_defaults() -> None:
    policy = CampaignPolicy(marketing=False, suppress={1}, defer={2: 5.0}, lift_on_reply=())
    again = CampaignPolicy.from_record(policy.record())
    assert again == policy
    for garbage in (None, [], {"suppress": "x"}, {"defer": {"x": 1}}, {"marketing": 3}):
        assert CampaignPolicy.from_record(garbage) == CampaignPolicy()


def test_bulk_sender_checks_policy_and_outside_window(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="policy"):
        BulkSender(policy={"suppress": [1]})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="outside_window"):
        BulkSender(outside_window="convert", journal=tmp_path / "s.db")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="BroadcastStore"):
        BulkSender(outside_window="skip")  # no store: no window tracker
    BulkSender(outside_window="skip", journal=tmp_path / "s.db")


# -- the suppression list --------------------------------------------------------------------


async def test_failures_suppress_by_the_policy_kept_with_their_campaign(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with BroadcastStore(path, clock=Clock()) as sender:
        await sent(sender, "utility", CampaignPolicy(marketing=False, suppress={131000}))
        await sent(sender, "promo")
    # A receiver: another store object on the file (as in another process), no run of its own.
    async with BroadcastStore(path, clock=Clock()) as receiver:
        await receiver.record_webhook(failed("utility-w1", 131050))  # no rule for utility
        await receiver.record_webhook(failed("utility-w2", 131000))  # this campaign's own rule
        await receiver.record_webhook(failed("promo-w1", 131000))  # not in the default rules
        await receiver.record_webhook(failed("promo-w2", 131050))
        await receiver.record_webhook(failed("promo-w3", 131049, at=T0 - 60))
        entries = {e.recipient: e for e in receiver.suppressions}
    assert set(entries) == {number(2)[1:], number(3)[1:]}
    two, three = entries[number(2)[1:]], entries[number(3)[1:]]
    # number(2): 131000 for good by utility's rule first; promo's 131050 does not narrow it.
    assert (two.code, two.scope, two.until, two.campaign) == (131000, "all", None, "utility")
    assert (three.code, three.until, three.campaign) == (131049, T0 - 60 + DAY, "promo")


async def test_a_deferral_ends_on_time_and_never_replaces_a_suppression(tmp_path: Path) -> None:
    clock = Clock()
    async with BroadcastStore(tmp_path / "s.db", clock=clock) as store:
        await sent(store, "promo")
        await store.record_webhook(failed("promo-w1", 131049))
        await store.record_webhook(failed("promo-w2", 131026))
        await store.record_webhook(failed("promo-w2", 131049))  # a dedup key: same wamid, status
        store.begin("later")
        assert store.suppressions.skips(number(1), True) is not None
        clock.now = T0 + DAY - 1
        assert store.suppressions.skips(number(1), True) is not None
        clock.now = T0 + DAY
        assert store.suppressions.skips(number(1), True) is None  # deferral over
        assert store.suppressions.skips(number(2), True) is not None  # for good
        store.finish()
        store.suppressions.add(number(2), reason="deferred by hand", until=T0 + 10)
        assert store.suppressions.get(number(2)).until == T0 + 10  # type: ignore[union-attr]


async def test_suppression_list_by_hand(tmp_path: Path) -> None:
    async with BroadcastStore(tmp_path / "s.db", clock=Clock()) as store:
        entry = store.suppressions.add("+1 650 000-0001", code=131050, reason="asked us")
        assert entry.recipient == "16500000001" and entry.at == T0
        assert store.suppressions.get("16500000001") == entry
        assert len(store.suppressions) == 1
        error = entry.error()
        assert isinstance(error, SuppressedError) and str(error).startswith("suppressed: 131050")
        for bad in ({"number": "abc"}, {"reason": " "}, {"scope": "some"}, {"code": "131050"}):
            arguments: dict[str, Any] = {"number": number(5), **bad}
            with pytest.raises(ValidationError):
                store.suppressions.add(arguments.pop("number"), **arguments)
        assert store.suppressions.remove(number(1)) is True
        assert store.suppressions.remove(number(1)) is False
        assert list(store.suppressions) == []


# -- windows ---------------------------------------------------------------------------------


async def test_inbound_messages_open_windows_for_24_hours(tmp_path: Path) -> None:
    clock = Clock()
    async with BroadcastStore(tmp_path / "s.db", clock=clock) as store:
        assert not store.in_window(number(1))
        await store.record_webhook(wrote(number(1)[1:], T0 - 3600))
        await store.record_webhook(wrote(number(2)[1:], T0 + 10 * DAY, "in-2"))  # from the future
        assert store.last_inbound(number(1)) == T0 - 3600
        assert store.last_inbound(number(2)) == T0  # capped at its receipt: no endless window
        assert store.in_window(number(1))
        clock.now = T0 - 3600 + DAY
        assert not store.in_window(number(1))


async def test_a_late_131047_closes_the_window_the_store_thought_open(tmp_path: Path) -> None:
    async with BroadcastStore(tmp_path / "s.db", clock=Clock()) as store:
        await store.record_webhook(wrote(number(1)[1:], T0 - 60))
        await sent(store, "promo")
        assert store.in_window(number(1))
        await store.record_webhook(failed("promo-w1", 131047))
        assert not store.in_window(number(1))
        assert store.suppressions.get(number(1)) is None  # a closed window suppresses nobody


async def test_schema_3_tables_are_in_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with BroadcastStore(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"suppressions", "windows", "policies", "messages_unpoliced"} <= tables


# -- the sender: fallback, halts by code -----------------------------------------------------


async def run(sender: BulkSender, items: list[Any]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    async for outcome in sender.run(items):
        outcomes.append(outcome)
    return outcomes


def as_template(message: Message) -> TemplateMessage:
    return TemplateMessage(to=message.to, template=WHERE)


async def test_a_131047_refusal_is_resent_as_the_policys_template(tmp_path: Path) -> None:
    async with FakeDialog360(api_keys=("k",), throughput=None) as fake:
        fake.add_template("where_we_are", "en")
        fake.fail_recipient(number(1), code=131047, message="Re-engagement message", times=1)
        async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
            policy = CampaignPolicy(fallback=as_template)
            sender = BulkSender(client, journal=tmp_path / "s.db", policy=policy)
            items = [LocationMessage(to=number(n), location=HQ) for n in (1, 2)]
            outcomes = await run(sender, items)
            bodies = [r.json for r in fake.requests if r.path.endswith("/messages")]
    by = {o.message.to: o for o in outcomes}
    assert by[number(1)].status == "sent" and by[number(1)].sent_as == as_template(items[0])
    assert by[number(2)].status == "sent" and by[number(2)].sent_as is None
    assert Counter((b["to"], b["type"]) for b in bodies) == {
        (number(1), "location"): 1,
        (number(1), "template"): 1,
        (number(2), "location"): 1,
    }


async def test_on_premise_470_resends_the_template_with_its_namespace(tmp_path: Path) -> None:
    async with FakeDialog360(api_keys=("k",), throughput=None, engage_all=True) as fake:
        fake.add_template("where_we_are", "en")
        fake.fail_recipient(number(1), code=470, message="Message failed to send", times=1)
        async with OnPremiseClient("k", base_url=fake.url, rate_limit=None) as client:
            policy = CampaignPolicy(fallback=as_template)
            sender = BulkSender(client, journal=tmp_path / "s.db", policy=policy)
            outcomes = await run(sender, [LocationMessage(to=number(1), location=HQ)])
            bodies = [r.json for r in fake.requests if r.path.endswith("/messages")]
    assert outcomes[0].status == "sent" and outcomes[0].sent_as == as_template(outcomes[0].message)
    assert [b["type"] for b in bodies] == ["location", "template"]
    template = bodies[1]["template"]
    assert template["namespace"] == "ns-1"
    assert template["language"] == {"policy": "deterministic", "code": "en"}


async def test_a_converter_that_returns_garbage_fails_that_message_and_sends_nothing(
    tmp_path: Path,
) -> None:
    async with FakeDialog360(api_keys=("k",), throughput=None) as fake:
        async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
            for bad in (
                lambda m: m,  # not a template
                lambda m: TemplateMessage(to=number(9), template=WHERE),  # someone else
            ):
                sender = BulkSender(client, journal=tmp_path / "s.db", outside_window=bad)
                outcomes = await run(sender, [LocationMessage(to=number(1), location=HQ)])
                assert outcomes[0].status == "failed"
                assert isinstance(outcomes[0].error, ValidationError)
        assert fake.stats()["sends"]["total"] == 0


@pytest.mark.parametrize(
    ("policy", "halts"), [(CampaignPolicy(), True), (CampaignPolicy(halt_channel=()), False)]
)
async def test_a_payment_issue_halts_the_channel_only_by_the_policy(
    tmp_path: Path, policy: CampaignPolicy, halts: bool
) -> None:
    async with FakeDialog360(api_keys=("k1", "k2"), throughput=None, engage_all=True) as fake:
        fake.fail_recipient(number(0), code=131042, message="Business eligibility payment issue")
        async with (
            Dialog360Client("k1", base_url=fake.url, rate_limit=None) as one,
            Dialog360Client("k2", base_url=fake.url, rate_limit=None) as two,
        ):
            items: list[Any] = [(one, LocationMessage(to=number(0), location=HQ))]
            items += [(one, LocationMessage(to=number(n), location=HQ)) for n in range(1, 50)]
            items += [(two, LocationMessage(to=number(n), location=HQ)) for n in range(100, 150)]
            sender = BulkSender(concurrency=1, policy=policy)
            outcomes = await run(sender, items)
    status = Counter((o.message.to >= number(100), o.status) for o in outcomes)
    assert status[(True, "sent")] == 50  # the other channel goes on
    assert isinstance(outcomes[0].error, APIError) and outcomes[0].error.code == 131042
    if halts:
        assert status[(False, "cancelled")] == 49 and sender.stats.halted
    else:
        assert status[(False, "sent")] == 49 and not sender.stats.halted


async def test_summary_counts_policy_skips_by_reason(tmp_path: Path) -> None:
    async with BroadcastStore(tmp_path / "s.db") as store:
        store.suppressions.add(number(1), code=131026, reason="undeliverable")
        async with FakeDialog360(api_keys=("k",), throughput=None, engage_all=True) as fake:
            async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
                sender = BulkSender(client, journal=store)
                items = [LocationMessage(to=number(n), location=HQ) for n in (1, 2)]
                summary = await sender.send_all(items)
    assert (summary.sent, summary.skipped, summary.ok) == (1, 1, True)
    (failure,) = summary.failures
    assert (failure.status, failure.reason, failure.code) == ("skipped", "suppressed", 131026)
    assert "reason:    1 skipped (suppressed 131026: message undeliverable)" in str(summary)


@pytest.mark.parametrize("rules", ["default", "no suppression"])
async def test_a_resume_retries_a_131026_send_only_when_the_policy_does_not_suppress(
    tmp_path: Path, rules: str
) -> None:
    policy = CampaignPolicy() if rules == "default" else CampaignPolicy(suppress=())
    items = [LocationMessage(to=number(n), location=HQ) for n in (1, 2)]
    async with BroadcastStore(tmp_path / "s.db") as store:
        async with FakeDialog360(api_keys=("k",), throughput=None, engage_all=True) as fake:
            fake.fail_recipient(number(1), times=1)  # a synchronous 131026, once
            async with Dialog360Client("k", base_url=fake.url, rate_limit=None) as client:
                first = await BulkSender(client, journal=store, policy=policy).send_all(items)
                second = await BulkSender(client, journal=store, policy=policy).send_all(items)
        entry = store.suppressions.get(number(1))
    assert (first.sent, first.failed) == (1, 1)
    if rules == "default":
        assert entry is not None and entry.code == 131026
        assert (second.skipped, second.sent) == (2, 0)
        (failure,) = second.failures
        assert (failure.reason, failure.code) == ("suppressed", 131026)
        assert fake.sends.get(number(1)[1:], 0) == 0  # the refused attempt was all
    else:
        assert entry is None
        assert (second.skipped, second.sent) == (1, 1)
        assert fake.sends.get(number(1)[1:], 0) == 1  # accepted by the resume
