"""Template parameters: the variables a template send fills in.

A parameter of type X is ``{"type": X, X: ...}`` on the wire, its fields being those under X
(../shared/docs/webhooks-and-statuses.md §6); the converter nests them. Every model validates
at construction, so bad input raises ValidationError before any I/O.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import attrs

from . import _validation as v
from .errors import ValidationError

__all__ = [
    "PARAMETERS",
    "CurrencyParameter",
    "DateTimeParameter",
    "DocumentParameter",
    "ImageParameter",
    "LocationParameter",
    "Parameter",
    "PayloadParameter",
    "TextParameter",
    "VideoParameter",
    "items",
]

_MAX_AMOUNT = 2**63  # amount_1000 must fit the JSON encoders' 64-bit integers
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)  # ISO 4217
_URL_UNSAFE = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff]")

_T = TypeVar("_T")


def _field(inst: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def _text(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A non-empty string that can be sent."""
    field = _field(inst, attribute)
    if not v.text(value, field).strip():
        raise ValidationError(field, "must not be empty")


def _optional_text(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        v.text(value, _field(inst, attribute))


def items(values: Iterable[_T], kinds: tuple[type[Any], ...], field: str) -> tuple[_T, ...]:
    """``values`` as a tuple whose items are each one of ``kinds``, else ValidationError."""
    names = " or ".join(kind.__name__ for kind in kinds)
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        raise ValidationError(field, f"must be a list of {names}, got {v.shown(values)}")
    out = tuple(values)
    for i, item in enumerate(out):
        if not isinstance(item, kinds):
            raise ValidationError(f"{field}[{i}]", f"must be a {names}, got {v.shown(item)}")
    return out


@attrs.frozen(kw_only=True)
class TextParameter:
    """A text variable (``{{1}}``) of a header, body or URL button."""

    text: str = attrs.field(validator=_text)
    type: Literal["text"] = attrs.field(default="text", init=False)


def _amount(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -_MAX_AMOUNT < value < _MAX_AMOUNT
    ):
        raise ValidationError(
            "CurrencyParameter.amount_1000",
            f"must be an integer (amount x 1000), got {v.shown(value)}",
        )
    return value


def _currency_code(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValidationError(
            "CurrencyParameter.code",
            f"must be an ISO 4217 code such as 'USD', got {v.shown(value)}",
        )
    return value


@attrs.frozen(kw_only=True)
class CurrencyParameter:
    """An amount of money: ``amount_1000`` is the amount times 1000 (``100990`` = 100.99)."""

    fallback_value: str = attrs.field(validator=_text)
    code: str = attrs.field(converter=_currency_code)
    amount_1000: int = attrs.field(converter=_amount)
    type: Literal["currency"] = attrs.field(default="currency", init=False)


@attrs.frozen(kw_only=True)
class DateTimeParameter:
    """A date and time, shown as ``fallback_value``."""

    fallback_value: str = attrs.field(validator=_text)
    type: Literal["date_time"] = attrs.field(default="date_time", init=False)


def _latitude(value: float) -> float:
    return v.coordinate(value, "LocationParameter.latitude", 90.0)


def _longitude(value: float) -> float:
    return v.coordinate(value, "LocationParameter.longitude", 180.0)


@attrs.frozen(kw_only=True)
class LocationParameter:
    """The map of a location-header template, in decimal degrees (given at send time)."""

    latitude: float = attrs.field(converter=_latitude)
    longitude: float = attrs.field(converter=_longitude)
    name: str | None = attrs.field(default=None, validator=_optional_text)
    address: str | None = attrs.field(default=None, validator=_optional_text)
    type: Literal["location"] = attrs.field(default="location", init=False)


def _link(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    field = _field(inst, attribute)
    shown = f"must be an https:// URL, got {v.shown(value)}"
    if not isinstance(value, str) or _URL_UNSAFE.search(value):
        raise ValidationError(field, shown)
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme != "https":
        raise ValidationError(field, shown)


def _media_id(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        v.token(value, _field(inst, attribute))


def _one_source(inst: Any) -> None:
    if (inst.link is None) == (inst.id is None):
        raise ValidationError(type(inst).__name__, "needs exactly one of link and id")


@attrs.frozen(kw_only=True)
class ImageParameter:
    """A header image, by ``link`` (https) or uploaded media ``id``: exactly one."""

    link: str | None = attrs.field(default=None, validator=_link)
    id: str | None = attrs.field(default=None, validator=_media_id)
    type: Literal["image"] = attrs.field(default="image", init=False)

    def __attrs_post_init__(self) -> None:
        _one_source(self)


@attrs.frozen(kw_only=True)
class VideoParameter:
    """A header video, by ``link`` (https) or uploaded media ``id``: exactly one."""

    link: str | None = attrs.field(default=None, validator=_link)
    id: str | None = attrs.field(default=None, validator=_media_id)
    type: Literal["video"] = attrs.field(default="video", init=False)

    def __attrs_post_init__(self) -> None:
        _one_source(self)


@attrs.frozen(kw_only=True)
class DocumentParameter:
    """A header document, by ``link`` (https) or media ``id`` (exactly one), and its file name."""

    link: str | None = attrs.field(default=None, validator=_link)
    id: str | None = attrs.field(default=None, validator=_media_id)
    filename: str | None = attrs.field(default=None, validator=_optional_text)
    type: Literal["document"] = attrs.field(default="document", init=False)

    def __attrs_post_init__(self) -> None:
        _one_source(self)


@attrs.frozen(kw_only=True)
class PayloadParameter:
    """What a quick-reply button sends back when tapped (the inbound ``button.payload``)."""

    payload: str = attrs.field(validator=_text)
    type: Literal["payload"] = attrs.field(default="payload", init=False)


Parameter = (
    TextParameter
    | CurrencyParameter
    | DateTimeParameter
    | LocationParameter
    | ImageParameter
    | DocumentParameter
    | VideoParameter
    | PayloadParameter
)
"""Any template parameter."""

PARAMETERS: tuple[type[Any], ...] = typing.get_args(Parameter)
