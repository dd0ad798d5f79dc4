"""Outbound message models, named and shaped exactly as on the wire.

Every model validates at construction, so bad input raises ValidationError before any I/O.
Wire shapes: ../shared/docs/360dialog-api.md §2.1-2.3; rules: §5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

import attrs

from . import _validation as v
from ._templates import TemplateMessage, TextMessage
from .errors import ValidationError

__all__ = [
    "Address",
    "Contact",
    "ContactsMessage",
    "Email",
    "Location",
    "LocationMessage",
    "Message",
    "Name",
    "Org",
    "Phone",
    "Url",
]

MAX_CONTACTS = 257  # Meta contacts messages: "up to 257 contacts"
OMITTED = (None, ())
"""Defaults a body leaves out: a field at one is neither stored (fast_init) nor sent."""

_T = TypeVar("_T")
_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _text(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Runs for every text field of every message built, so the plain str that is fine returns
    # here: ASCII is known in O(1), other text by one C-speed encode. v.text has the rule.
    if value is None:
        return
    if type(value) is str:
        if value.isascii():
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return
    v.text(value, f"{type(inst).__name__}.{attribute.name}")


_C = TypeVar("_C", bound=type)


def fast_init(cls: _C) -> _C:
    """``cls`` with attrs' ``__init__`` replaced by one that runs the same rules, faster.

    attrs calls each validator as a function, and a contact card has 35 text fields: that was
    most of what building one cost. Here a text field is checked inline (``None``, or an ASCII
    ``str``, passes ``_text`` as is); when one is not, every validator runs as attrs runs them,
    in field order, so the errors are the same. Converters run first and the other validators
    and ``__attrs_post_init__`` last, as in attrs. ``__wrapped__`` is attrs' ``__init__``.
    A class with no validators gains too: attrs' frozen ``__init__`` stores each field through
    ``object.__setattr__``, this one through the slot's own descriptor (records built for
    every send: SentMessage, Outcome).

    A class without slots (the message models) keeps in its ``__dict__`` only what the wire
    carries: a field left at a ``None`` or ``()`` default is not stored, and reads the default
    from the class. ``__dict__`` is then the body the converter sends, in field order, made by
    one C-speed copy instead of a test per field (``_converter._model_hook``).
    """
    if hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"{cls.__name__}: __attrs_pre_init__ is not supported")
    scope: dict[str, Any] = {"_type": type, "_str": str}
    params, converted, stored, fast, slow, checks = [], [], [], [], [], []
    maybe: list[str] = []  # the stores of omittable fields: after the others, as cattrs has it
    slotted = "__slots__" in cls.__dict__
    if not slotted:
        stored.append(" d = self.__dict__")  # frozen: the one way in, as attrs' own __init__
    for a in attrs.fields(cls):
        if isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            raise TypeError(f"{cls.__name__}.{a.name}: a Factory default is not supported")
        name = a.alias  # the keyword, and the local name below
        scope[f"a_{name}"] = a
        into = stored
        if slotted:
            scope[f"s_{name}"] = cls.__dict__[a.name].__set__  # the slot: no __setattr__
            store = f" s_{name}(self, {{}})"
        elif a.default in OMITTED:
            setattr(cls, a.name, a.default)  # what an unstored field reads
            test = name if a.default == () else f"{name} is not None"
            store, into = f" if {test}:\n  d[{a.name!r}] = {{}}", maybe
        else:
            store = f" d[{a.name!r}] = {{}}"
        if not a.init:
            scope[f"d_{name}"] = a.default
            into.append(store.format(f"d_{name}"))
            continue
        if a.default is attrs.NOTHING:
            params.append(name)
        else:
            scope[f"d_{name}"] = a.default
            params.append(f"{name}=d_{name}")
        if a.converter is not None:
            scope[f"c_{name}"] = a.converter
            convert = f" {name} = c_{name}({name})"
            if a.default is not attrs.NOTHING and _keeps(a.converter, a.default):
                convert = f" if {name} is not d_{name}:\n {convert}"  # a default passes as is
            converted.append(convert)
        into.append(store.format(name))
        if a.validator is not None:
            scope[f"v_{name}"] = a.validator
            slow.append(f"  v_{name}(self, a_{name}, {name})")
            if a.validator is _text:
                fast.append(f"({name} is None or (_type({name}) is _str and {name}.isascii()))")
            else:
                checks.append(f" v_{name}(self, a_{name}, {name})")
    lines = [f"def __init__(self, *, {', '.join(params)}):", *converted, *stored, *maybe]
    if fast:
        lines += [f" if not ({' and '.join(fast)}):", *slow]
        lines += [" else:", *(f" {check}" for check in checks)] if checks else []
    else:
        lines += checks
    if hasattr(cls, "__attrs_post_init__"):
        lines.append(" self.__attrs_post_init__()")
    exec(compile("\n".join(lines) + "\n", f"<validated init {cls.__qualname__}>", "exec"), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__wrapped__ = cls.__dict__["__init__"]
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning to a method
    return cls


def _keeps(converter: Callable[[Any], Any], default: object) -> bool:
    try:
        return converter(default) is default
    except Exception:
        return False


def _items(values: Iterable[_T], kind: type[_T], field: str) -> tuple[_T, ...]:
    if type(values) is tuple or type(values) is list:  # what callers pass: no ABC isinstance
        for item in values:
            if type(item) is not kind:
                break
        else:
            return tuple(values)
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        raise ValidationError(field, f"must be a list of {kind.__name__}, got {v.shown(values)}")
    out = tuple(values)
    for i, item in enumerate(out):
        if not isinstance(item, kind):
            raise ValidationError(
                f"{field}[{i}]", f"must be a {kind.__name__}, got {v.shown(item)}"
            )
    return out


def _latitude(value: float) -> float:
    if type(value) is float and -90.0 <= value <= 90.0:  # NaN fails this: the rule says why
        return value
    return v.coordinate(value, "Location.latitude", 90.0)


def _longitude(value: float) -> float:
    if type(value) is float and -180.0 <= value <= 180.0:
        return value
    return v.coordinate(value, "Location.longitude", 180.0)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Location:
    """A point on the map, in decimal degrees."""

    latitude: float = attrs.field(converter=_latitude)
    longitude: float = attrs.field(converter=_longitude)
    name: str | None = attrs.field(default=None, validator=_text)
    address: str | None = attrs.field(default=None, validator=_text)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Name:
    """A contact's name: ``formatted_name`` plus at least one other part (360dialog's rule)."""

    formatted_name: str = attrs.field(validator=_text)
    first_name: str | None = attrs.field(default=None, validator=_text)
    last_name: str | None = attrs.field(default=None, validator=_text)
    middle_name: str | None = attrs.field(default=None, validator=_text)
    suffix: str | None = attrs.field(default=None, validator=_text)
    prefix: str | None = attrs.field(default=None, validator=_text)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.formatted_name, str) or not self.formatted_name.strip():
            raise ValidationError("Name.formatted_name", "must not be empty")
        # A loop, not any(genexpr): half the cost. `p and not p.isspace()` is `p and p.strip()`.
        for p in (self.first_name, self.last_name, self.middle_name, self.suffix, self.prefix):
            if p and not p.isspace():
                return
        raise ValidationError(
            "Name", "needs at least one of first_name, last_name, middle_name, suffix, prefix"
        )


def _country_code(value: str | None) -> str | None:
    if value is not None and not (
        isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()
    ):
        raise ValidationError("Address.country_code", f"must be two letters, got {v.shown(value)}")
    return value


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Address:
    """A postal address; ``type`` is usually ``"HOME"`` or ``"WORK"``."""

    street: str | None = attrs.field(default=None, validator=_text)
    city: str | None = attrs.field(default=None, validator=_text)
    state: str | None = attrs.field(default=None, validator=_text)
    zip: str | None = attrs.field(default=None, validator=_text)
    country: str | None = attrs.field(default=None, validator=_text)
    country_code: str | None = attrs.field(default=None, converter=_country_code)
    type: str | None = attrs.field(default=None, validator=_text)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Email:
    """An e-mail address; ``type`` is usually ``"HOME"`` or ``"WORK"``."""

    email: str | None = attrs.field(default=None, validator=_text)
    type: str | None = attrs.field(default=None, validator=_text)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Phone:
    """A phone number; ``type`` is one of CELL, MAIN, IPHONE, HOME, WORK."""

    phone: str | None = attrs.field(default=None, validator=_text)
    type: str | None = attrs.field(default=None, validator=_text)
    wa_id: str | None = attrs.field(default=None, validator=_text)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Org:
    """The organization a contact works for."""

    company: str | None = attrs.field(default=None, validator=_text)
    department: str | None = attrs.field(default=None, validator=_text)
    title: str | None = attrs.field(default=None, validator=_text)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Url:
    """A web address; ``type`` is usually ``"HOME"`` or ``"WORK"``."""

    url: str | None = attrs.field(default=None, validator=_text)
    type: str | None = attrs.field(default=None, validator=_text)


def _addresses(values: Iterable[Address]) -> tuple[Address, ...]:
    return _items(values, Address, "Contact.addresses")


def _emails(values: Iterable[Email]) -> tuple[Email, ...]:
    return _items(values, Email, "Contact.emails")


def _phones(values: Iterable[Phone]) -> tuple[Phone, ...]:
    return _items(values, Phone, "Contact.phones")


def _urls(values: Iterable[Url]) -> tuple[Url, ...]:
    return _items(values, Url, "Contact.urls")


def _kind(kind: type[object], field: str) -> _Validator:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise ValidationError(field, f"must be a {kind.__name__}, got {v.shown(value)}")

    return check


def _optional_kind(kind: type[object], field: str) -> _Validator:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise ValidationError(field, f"must be a {kind.__name__} or None, got {v.shown(value)}")

    return check


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class Contact:
    """A contact card. ``birthday`` takes ``YYYY-MM-DD`` or a ``datetime.date``."""

    name: Name = attrs.field(validator=_kind(Name, "Contact.name"))
    addresses: tuple[Address, ...] = attrs.field(default=(), converter=_addresses)
    birthday: str | None = attrs.field(default=None, converter=v.birthday)
    emails: tuple[Email, ...] = attrs.field(default=(), converter=_emails)
    org: Org | None = attrs.field(
        default=None,
        validator=_optional_kind(Org, "Contact.org"),
    )
    phones: tuple[Phone, ...] = attrs.field(default=(), converter=_phones)
    urls: tuple[Url, ...] = attrs.field(default=(), converter=_urls)


def _to(value: str) -> str:
    return v.recipient(value, "to")


def _contacts(values: Iterable[Contact]) -> tuple[Contact, ...]:
    out = _items(values, Contact, "ContactsMessage.contacts")
    if not 1 <= len(out) <= MAX_CONTACTS:
        raise ValidationError(
            "ContactsMessage.contacts", f"must hold 1 to {MAX_CONTACTS} contacts, got {len(out)}"
        )
    return out


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class LocationMessage:
    """A location message to one user. ``to`` is a phone number or wa_id (normalized)."""

    to: str = attrs.field(converter=_to)
    location: Location = attrs.field(validator=_kind(Location, "LocationMessage.location"))
    type: Literal["location"] = attrs.field(default="location", init=False)


@fast_init
@attrs.frozen(kw_only=True, slots=False)
class ContactsMessage:
    """A message carrying 1 to 257 contact cards to one user."""

    to: str = attrs.field(converter=_to)
    contacts: tuple[Contact, ...] = attrs.field(converter=_contacts)
    type: Literal["contacts"] = attrs.field(default="contacts", init=False)


Message = LocationMessage | ContactsMessage | TextMessage | TemplateMessage
"""Any outbound message the clients and the bulk sender accept."""

MESSAGE_KINDS: dict[str, type[Message]] = {
    "location": LocationMessage,
    "contacts": ContactsMessage,
    "text": TextMessage,
    "template": TemplateMessage,
}
"""The message class of each wire ``type``: what ``structure(wire, kind)`` is given."""
MESSAGE_TYPES: tuple[type[Message], ...] = tuple(MESSAGE_KINDS.values())
"""The classes of :data:`Message`, for ``isinstance`` checks."""


def check_message(message: object) -> Message:
    """``message``, if it is one the clients send; else a ValidationError."""
    if not isinstance(message, MESSAGE_TYPES):
        raise ValidationError(
            "message",
            "must be a LocationMessage, ContactsMessage, TextMessage or TemplateMessage, "
            f"got {v.shown(message)}",
        )
    return message
