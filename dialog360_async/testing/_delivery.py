"""What the fake decides about each accepted send: its statuses, and the truth it remembers.

Facts behind the defaults: ../shared/docs/webhooks-and-statuses.md §1.3 (status order, ``read``
without ``delivered``, messages that stay ``sent``) and §5 (failure codes).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Literal

import attrs

from ._bodies import digits

__all__ = ["Delivery", "DeliveryLog", "Fate", "Plan", "WebhookPlan", "decide"]

Fate = Literal["sent", "delivered", "read", "failed"]
"""The last status a message reaches: ``sent`` never gets delivered (the user is offline for
good or blocked the business), ``failed`` carries an error code."""
Api = Literal["cloud", "on_premise"]

_FATES: frozenset[str] = frozenset({"sent", "delivered", "read", "failed"})
_LADDER: Mapping[str, tuple[str, ...]] = {
    "sent": ("sent",),
    "delivered": ("sent", "delivered"),
    "read": ("sent", "delivered", "read"),
}
# Refused before WhatsApp sent anything: only a `failed` status (the others fail in delivery,
# after a `sent`). The window codes and the experiment (not billed, "not sent").
_NEVER_SENT = frozenset({131047, 470, 130472})
WINDOW_CODE: Mapping[Api, int] = {"cloud": 131047, "on_premise": 470}


def _ratio(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"WebhookPlan.{attribute.name} must be between 0 and 1")


def _seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"WebhookPlan.{attribute.name} must be a number of seconds >= 0")


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"WebhookPlan.{attribute.name} must be a whole number >= 1")


def _code_tuple(codes: Iterable[int]) -> tuple[int, ...]:
    return tuple(codes)


def _codes(_: object, attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]) -> None:
    if not value or not all(isinstance(code, int) and not isinstance(code, bool) for code in value):
        raise ValueError("WebhookPlan.codes must be a non-empty tuple of error codes")


@attrs.frozen(kw_only=True)
class WebhookPlan:
    """How the fake's status webhooks behave; every field has a calm default.

    Statuses: each accepted send gets ``sent``, ``delivered`` and ``read`` (or fewer, or
    ``failed``), decided at send time from a per-recipient `FakeDialog360.fate`, else the window
    rule, else the random mix below (seeded: the same sends give the same decisions).

    Attributes:
        fail_ratio: Share of sends that end ``failed``, with a code drawn from ``codes``.
        codes: Failure codes for the random mix (§5 of webhooks-and-statuses.md).
        undelivered_ratio: Share of the rest that stay ``sent`` forever.
        read_ratio: Share of the delivered ones that are also ``read``.
        enforce_window: A free-form (non-template) send to a user outside the 24-hour window
            fails with 131047 (On-Premise 470), as WhatsApp reports it: HTTP 200, then a
            ``failed`` status. `FakeDialog360.user_writes`, ``engage()`` and ``engage_all``
            open the window.
        seed: Seed of the random decisions; None draws a fresh one.
        sent_delay: Seconds from the send to its ``sent`` status.
        delivered_delay: Seconds from ``sent`` to ``delivered``.
        read_delay: Seconds from ``delivered`` to ``read``.
        early_ratio: Share of sends whose first status is POSTed (first attempt answered or
            timed out) *before* the send's own HTTP answer.
        shuffle: Give up per-message order: each message's statuses are scheduled at once
            (plus ``jitter``) and every batch is shuffled, so ``read`` may come before ``sent``.
            Without it a message's next status waits for the previous one's POST to end.
        jitter: With ``shuffle``, up to this many extra seconds on each status.
        duplicate_ratio: Share of statuses posted a second time, in a later POST.
        max_batch: Most statuses in one POST (batched entries, changes and statuses).
        linger: Seconds a batch waits for more statuses before it is posted (0: post what is
            due now).
        callback_on_failed: Echo ``biz_opaque_callback_data`` on ``failed`` statuses too
            (⚠ §3: Meta only promises it on sent/delivered/read).
        timeout: A POST not answered within this many seconds failed (360dialog: 5).
        attempts: POSTs of one body before the fake gives up (360dialog retries for 7 days).
        backoff: Seconds before the first redelivery; doubled for each one after.
        max_backoff: Cap of the redelivery delay.
        concurrency: POSTs in flight at once.
        sleep: Awaited for each redelivery delay (inject one to make backoff instant).
        signature_prefix: Put before the hex ``x-360dialog-signature`` (e.g. ``"sha256="``).
    """

    fail_ratio: float = attrs.field(default=0.0, validator=_ratio)
    codes: tuple[int, ...] = attrs.field(default=(131026,), converter=_code_tuple, validator=_codes)
    undelivered_ratio: float = attrs.field(default=0.0, validator=_ratio)
    read_ratio: float = attrs.field(default=1.0, validator=_ratio)
    enforce_window: bool = True
    seed: int | None = None
    sent_delay: float = attrs.field(default=0.0, validator=_seconds)
    delivered_delay: float = attrs.field(default=0.0, validator=_seconds)
    read_delay: float = attrs.field(default=0.0, validator=_seconds)
    early_ratio: float = attrs.field(default=0.0, validator=_ratio)
    shuffle: bool = False
    jitter: float = attrs.field(default=0.0, validator=_seconds)
    duplicate_ratio: float = attrs.field(default=0.0, validator=_ratio)
    max_batch: int = attrs.field(default=1, validator=_positive)
    linger: float = attrs.field(default=0.0, validator=_seconds)
    callback_on_failed: bool = True
    timeout: float = attrs.field(default=5.0, validator=_seconds)
    attempts: int = attrs.field(default=5, validator=_positive)
    backoff: float = attrs.field(default=0.25, validator=_seconds)
    max_backoff: float = attrs.field(default=60.0, validator=_seconds)
    concurrency: int = attrs.field(default=8, validator=_positive)
    sleep: Callable[[float], Awaitable[None]] = attrs.field(default=asyncio.sleep, repr=False)
    signature_prefix: str = ""


@attrs.frozen(kw_only=True)
class Delivery:
    """What the fake decided for one accepted send (compare a delivery report with it).

    Attributes:
        message_id: The wamid (or On-Premise id) the send was answered with.
        recipient_id: The recipient's wa_id.
        api: ``"cloud"`` or ``"on_premise"`` (which payload shape its statuses use).
        status: The last status planned: ``sent``, ``delivered``, ``read`` or ``failed``.
        code: The failure code of a ``failed`` message, else None.
        statuses: Every status planned for it, in emission order before any shuffling.
        callback_data: ``biz_opaque_callback_data`` of the send, echoed in its statuses.
    """

    message_id: str
    recipient_id: str
    api: Api
    status: Fate
    code: int | None
    statuses: tuple[str, ...]
    callback_data: str | None = None


class DeliveryLog(Mapping[str, Delivery]):
    """`Delivery` records by message id, plus the statuses the fake gave up posting."""

    def __init__(self) -> None:
        self._by_id: dict[str, Delivery] = {}
        self._lost: set[tuple[str, str]] = set()

    def __getitem__(self, message_id: str) -> Delivery:
        return self._by_id[message_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def counts(self) -> dict[str, int]:
        """Messages by final status (``sent``, ``delivered``, ``read``, ``failed``)."""
        return dict(Counter(record.status for record in self._by_id.values()))

    def failures(self) -> dict[int, int]:
        """Failed messages by code."""
        return dict(Counter(r.code for r in self._by_id.values() if r.code is not None))

    @property
    def lost(self) -> frozenset[tuple[str, str]]:
        """``(message_id, status)`` pairs whose every POST attempt failed (never received)."""
        return frozenset(self._lost)

    def add(self, record: Delivery) -> None:
        self._by_id[record.message_id] = record

    def lose(self, message_id: str, status: str) -> None:
        self._lost.add((message_id, status))

    def clear(self) -> None:
        self._by_id.clear()
        self._lost.clear()

    def __repr__(self) -> str:
        return f"<DeliveryLog messages={len(self._by_id)} lost={len(self._lost)}>"


@attrs.frozen(kw_only=True)
class Plan:
    """The statuses decided for one send, with the random choices made with them."""

    fate: Fate
    code: int | None
    statuses: tuple[str, ...]
    early: bool
    duplicated: tuple[bool, ...]
    jitter: tuple[float, ...]


class Fates:
    """Per-recipient fates set with `FakeDialog360.fate`, and the seeded random source."""

    def __init__(self) -> None:
        self._by_wa_id: dict[str, tuple[Fate, int | None]] = {}
        self._rng = random.Random()
        self._seeded_for: WebhookPlan | None = None

    def set(self, number: str, fate: str, code: int | None) -> None:
        if fate not in _FATES:
            raise ValueError("fate must be one of sent, delivered, read, failed")
        if fate == "failed":
            code = 131026 if code is None else code
        elif code is not None:
            raise ValueError("only a failed fate takes a code")
        self._by_wa_id[digits(number)] = (fate, code)  # type: ignore[assignment]

    def get(self, wa_id: str) -> tuple[Fate, int | None] | None:
        return self._by_wa_id.get(wa_id)

    def rng(self, plan: WebhookPlan) -> random.Random:
        if plan is not self._seeded_for:
            self._rng = random.Random(plan.seed)
            self._seeded_for = plan
        return self._rng

    def clear(self) -> None:
        self._by_wa_id.clear()
        self._seeded_for = None


def decide(
    fates: Fates, plan: WebhookPlan, wa_id: str, api: Api, *, in_window: bool, template: bool
) -> Plan:
    """Decide the statuses of one accepted send: fate, else window rule, else the random mix."""
    rng = fates.rng(plan)
    chosen = fates.get(wa_id)
    if chosen is not None:
        fate, code = chosen
    elif plan.enforce_window and not template and not in_window:
        fate, code = "failed", WINDOW_CODE[api]
    elif rng.random() < plan.fail_ratio:
        fate, code = "failed", rng.choice(plan.codes)
    elif rng.random() < plan.undelivered_ratio:
        fate, code = "sent", None
    else:
        fate, code = ("read" if rng.random() < plan.read_ratio else "delivered"), None
    if fate == "failed":
        statuses: tuple[str, ...] = ("failed",) if code in _NEVER_SENT else ("sent", "failed")
    else:
        statuses = _LADDER[fate]
    early = rng.random() < plan.early_ratio if plan.early_ratio else False
    duplicated = tuple(
        rng.random() < plan.duplicate_ratio if plan.duplicate_ratio else False for _ in statuses
    )
    jitter = tuple(rng.uniform(0.0, plan.jitter) if plan.shuffle else 0.0 for _ in statuses)
    return Plan(
        fate=fate, code=code, statuses=statuses, early=early, duplicated=duplicated, jitter=jitter
    )
