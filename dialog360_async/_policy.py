"""CampaignPolicy: what a failure code means for the rest of a broadcast and for later ones.

Defaults from ../shared/docs/webhooks-and-statuses.md §5: 131026 (undeliverable) suppresses the
recipient; 131050 (stopped marketing) and 130472 (marketing experiment) suppress them for
marketing; 131049 (per-user marketing limit) defers them for 24 h; 131031 (account locked), 368
(policy block) and 131042 (payment issue) halt the channel; 132015 and 132016 (template paused,
disabled) halt that template; 131047, 470 and 2048 (window closed; On-Premise refuses a send
to a user who has not written with 2048) resend as a template when the policy names a fallback.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from ._codes import meaning
from ._models import Message
from ._templates import TemplateMessage
from .errors import SuppressedError, ValidationError

__all__ = [
    "CampaignPolicy",
    "Convert",
    "Scope",
    "Suppression",
    "check_converted",
    "check_reach",
    "iso",
    "wa_id",
]

Scope = Literal["all", "marketing"]
Convert = Callable[[Message], TemplateMessage | None]
"""Turns a free-form message into the template message to send instead (None: skip it)."""

DAY = 86_400.0


def wa_id(to: str) -> str:
    """The key of a recipient in the suppression list and the window tracker: digits only (an
    inbound webhook's ``from`` has no ``+``)."""
    return to[1:] if to.startswith("+") else to


def _code_set(values: object) -> object:
    # Whatever is no collection stays as it is, for _check_codes to name the field.
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return values
    return frozenset(values)


def _check_codes(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    field = f"CampaignPolicy.{attribute.name}"
    if not isinstance(value, frozenset):
        raise ValidationError(field, f"must be a collection of error codes, got {value!r}")
    for code in value:
        _check_code(field, code)


def _check_code(field: str, code: object) -> None:
    if isinstance(code, bool) or not isinstance(code, int) or code < 0:
        raise ValidationError(field, f"must hold error codes (ints >= 0), got {code!r}")


def _delays(values: Mapping[int, float]) -> Mapping[int, float]:
    if not isinstance(values, Mapping):
        raise ValidationError("CampaignPolicy.defer", f"must map codes to seconds, got {values!r}")
    out: dict[int, float] = {}
    for code, seconds in values.items():
        _check_code("CampaignPolicy.defer", code)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValidationError(
                "CampaignPolicy.defer", f"must map {code} to seconds > 0, got {seconds!r}"
            )
        out[code] = float(seconds)
    return out


def _callable(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ValidationError(f"CampaignPolicy.{attribute.name}", f"must be callable: {value!r}")


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"CampaignPolicy.{attribute.name}", f"must be a bool: {value!r}")


@attrs.frozen(kw_only=True)
class CampaignPolicy:
    """What a broadcast does about failure codes; every rule can be overridden.

    Attributes:
        marketing: the campaign sends marketing messages: ``suppress_marketing`` codes suppress,
            and the recipients suppressed for marketing are skipped (a utility campaign sends to
            them).
        suppress: codes after which the recipient is suppressed for every later campaign.
        suppress_marketing: codes after which the recipient is suppressed for marketing.
        defer: code -> seconds: the recipient is skipped by later campaigns until then.
        halt_channel: codes that stop the channel's campaign (with 401, 403, the spam limit and a
            disabled channel, which always do).
        halt_template: codes that stop sends of that template through that channel; other
            templates and channels go on.
        fallback: turns a free-form message refused with a ``window_codes`` code into the
            template message sent instead (None: no resend).
        window_codes: the codes that mean the 24-hour window is closed.
        lift_on_reply: codes whose suppression ends when the user writes to the business.
    """

    marketing: bool = attrs.field(default=True, validator=_bool)
    suppress: frozenset[int] = attrs.field(
        default=frozenset({131026, 1026}), converter=_code_set, validator=_check_codes
    )
    suppress_marketing: frozenset[int] = attrs.field(
        default=frozenset({131050, 130472}), converter=_code_set, validator=_check_codes
    )
    defer: Mapping[int, float] = attrs.field(default={131049: DAY}, converter=_delays)
    halt_channel: frozenset[int] = attrs.field(
        default=frozenset({131031, 368, 131042}), converter=_code_set, validator=_check_codes
    )
    halt_template: frozenset[int] = attrs.field(
        default=frozenset({132015, 132016}), converter=_code_set, validator=_check_codes
    )
    fallback: Convert | None = attrs.field(default=None, validator=_callable, eq=False)
    window_codes: frozenset[int] = attrs.field(
        default=frozenset({131047, 470, 2048}), converter=_code_set, validator=_check_codes
    )
    lift_on_reply: frozenset[int] = attrs.field(
        default=frozenset({131026, 1026}), converter=_code_set, validator=_check_codes
    )

    def entry(self, code: int) -> tuple[Scope, float | None] | None:
        """What a delivery failure with ``code`` puts on the suppression list: ``(scope,
        seconds deferred or None for good)``, or None."""
        if code in self.suppress:
            return ("all", None)
        if self.marketing and code in self.suppress_marketing:
            return ("marketing", None)
        seconds = self.defer.get(code)
        return None if seconds is None else ("all", seconds)

    def record(self) -> dict[str, Any]:
        """The rules the store keeps with a campaign (a receiver applies them to its statuses);
        the fallback stays with the sender."""
        return {
            "marketing": self.marketing,
            "suppress": sorted(self.suppress),
            "suppress_marketing": sorted(self.suppress_marketing),
            "defer": {str(code): seconds for code, seconds in sorted(self.defer.items())},
            "lift_on_reply": sorted(self.lift_on_reply),
            "window_codes": sorted(self.window_codes),
        }

    @classmethod
    def from_record(cls, record: object) -> CampaignPolicy:
        """The policy a store kept (the defaults for anything it cannot read)."""
        if not isinstance(record, dict):
            return cls()
        try:
            return cls(
                marketing=record.get("marketing", True),
                suppress=record.get("suppress", cls().suppress),
                suppress_marketing=record.get("suppress_marketing", cls().suppress_marketing),
                defer={int(k): v for k, v in record.get("defer", {}).items()},
                lift_on_reply=record.get("lift_on_reply", cls().lift_on_reply),
                window_codes=record.get("window_codes", cls().window_codes),
            )
        except (ValidationError, ValueError, TypeError, AttributeError):
            return cls()


def iso(at: float) -> str:
    """Unix time as an ISO 8601 UTC instant, for messages."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class Suppression:
    """One entry of a broadcast store's suppression list.

    Attributes:
        recipient: the number, digits only.
        scope: ``"all"`` campaigns, or only ``"marketing"`` ones.
        code: the failure code that put it there (None when added by hand).
        reason: a few words on why.
        at: Unix time it was added.
        until: Unix time a deferral ends; None: for good (until removed).
        campaign: the campaign whose failure put it there.
        lifts: the entry ends when the user writes to the business.
    """

    recipient: str
    scope: Scope = "all"
    code: int | None = None
    reason: str = ""
    at: float = 0.0
    until: float | None = None
    campaign: str | None = None
    lifts: bool = False

    def applies(self, marketing: bool, now: float) -> bool:
        """Whether a campaign (``marketing`` or not) skips the recipient at ``now``."""
        if self.until is not None and now >= self.until:
            return False
        return marketing or self.scope == "all"

    def error(self) -> SuppressedError:
        """The error of an outcome skipped for this entry."""
        code = "" if self.code is None else f" {self.code}"
        what = meaning(self.code) or self.reason or "added by hand"
        head = "suppressed:" if self.until is None else f"deferred until {iso(self.until)}:"
        return SuppressedError(
            f"{head}{code} ({what})", recipient=self.recipient, code=self.code, until=self.until
        )


def check_reach(policy: object, outside_window: object, store: bool) -> CampaignPolicy:
    """The BulkSender's ``policy`` and ``outside_window`` (``store``: its journal is a
    BroadcastStore or its path), checked; the policy to use."""
    if policy is not None and not isinstance(policy, CampaignPolicy):
        raise ValidationError("policy", f"must be a CampaignPolicy or None, got {policy!r}")
    if not (outside_window in ("send", "skip") or callable(outside_window)):
        raise ValidationError(
            "outside_window", f"must be 'send', 'skip' or a callable, got {outside_window!r}"
        )
    if outside_window != "send" and not store:
        raise ValidationError(
            "outside_window",
            "needs a BroadcastStore journal (the store tracks who wrote in the last 24 hours)",
        )
    return policy or CampaignPolicy()


def check_converted(converted: object, message: Message) -> TemplateMessage | None:
    """What a converter returned for ``message``: a template message to the same user, or None."""
    if converted is None:
        return None
    if not isinstance(converted, TemplateMessage):
        raise ValidationError(
            "outside_window",
            f"a converter must return a TemplateMessage or None, got {converted!r}",
        )
    if wa_id(converted.to) != wa_id(message.to):
        raise ValidationError(
            "outside_window", "a converter must keep the recipient of the message it converts"
        )
    return converted
