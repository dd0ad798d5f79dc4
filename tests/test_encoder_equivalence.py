"""The fast paths (issue 14) against the code they shortcut: same bodies, same errors.

The generated unstructure hooks must give bodies byte-identical to cattrs' generic hooks; the
generated ``__init__`` must accept, convert and reject exactly as attrs' own ``__init__``
(kept as ``__init__.__wrapped__``); the fast paths of ``_items`` and ``recipient`` must agree
with their general paths, which a ``str`` subclass or a generator takes.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import pickle
import re
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from cattrs.gen import make_dict_unstructure_fn, override
from hypothesis import given
from hypothesis import strategies as st

from dialog360_async import (
    Address,
    Contact,
    ContactsMessage,
    Email,
    Location,
    LocationMessage,
    Name,
    Org,
    Outcome,
    Phone,
    SentMessage,
    Url,
    ValidationError,
    _models,
    _validation,
)
from dialog360_async._converter import unstructure

MODELS = (Location, LocationMessage, Name, Address, Email, Phone, Org, Url, Contact)
MODELS += (ContactsMessage,)
RECORDS = (SentMessage, Outcome)  # no rules: fast_init only stores, for every send


def _reference_converter() -> cattrs.Converter:
    # The converter's hooks before issue 14: cattrs' generated ones, omitting None and ().
    conv = cattrs.Converter(unstruct_collection_overrides={tuple: list})

    def factory(cls: type[Any]) -> Any:
        omit = override(omit_if_default=True)
        overrides = {a.name: omit for a in attrs.fields(cls) if a.default in (None, ())}
        return make_dict_unstructure_fn(cls, conv, _cattrs_include_init_false=True, **overrides)

    conv.register_unstructure_hook_factory(attrs.has, factory)
    return conv


REFERENCE = _reference_converter()


class Text(str):
    """A str subclass: valid text that the fast paths leave to the general ones."""


# -- valid models: bodies ---------------------------------------------------------------------

# Any text JSON can carry: ASCII, other scripts, emoji, control characters (no surrogates).
text = st.text(max_size=12)
opt_text = st.none() | text | st.sampled_from(["", " ", "HOME", "José", "東京", "🙂"])
names = st.builds(
    Name,
    formatted_name=text.filter(str.strip),
    first_name=text.filter(str.strip),
    last_name=opt_text,
    middle_name=opt_text,
    suffix=opt_text,
    prefix=opt_text,
)
letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcz", min_size=2, max_size=2)
addresses = st.builds(
    Address,
    street=opt_text,
    city=opt_text,
    state=opt_text,
    zip=opt_text,
    country=opt_text,
    country_code=st.none() | letters,
    type=opt_text,
)
contacts = st.builds(
    Contact,
    name=names,
    addresses=st.lists(addresses, max_size=2) | st.tuples() | st.tuples(addresses),
    birthday=st.none() | st.dates(min_value=datetime.date(1000, 1, 1)),
    emails=st.lists(st.builds(Email, email=opt_text, type=opt_text), max_size=2),
    org=st.none() | st.builds(Org, company=opt_text, department=opt_text, title=opt_text),
    phones=st.lists(st.builds(Phone, phone=opt_text, type=opt_text, wa_id=opt_text), max_size=2),
    urls=st.lists(st.builds(Url, url=opt_text, type=opt_text), max_size=2),
)
recipients = st.from_regex(r"\+?[1-9][0-9]{4,19}", fullmatch=True) | st.sampled_from(
    ["+49 151 1234-5678", "(650) 555-1234", " +1.650.555.1234 "]
)
locations = st.builds(
    Location,
    latitude=st.floats(-90, 90) | st.integers(-90, 90),
    longitude=st.floats(-180, 180) | st.integers(-180, 180),
    name=opt_text,
    address=opt_text,
)
messages = st.builds(LocationMessage, to=recipients, location=locations) | st.builds(
    ContactsMessage, to=recipients, contacts=st.lists(contacts, min_size=1, max_size=3)
)


@given(messages)
def test_bodies_byte_identical_to_cattrs_generic_hooks(
    message: LocationMessage | ContactsMessage,
) -> None:
    expected = orjson.dumps(REFERENCE.unstructure(message))
    assert orjson.dumps(unstructure(message)) == expected


def _parts(model: Any) -> list[Any]:
    found = [model]
    for a in attrs.fields(type(model)):
        value = getattr(model, a.name)
        for item in value if isinstance(value, tuple) else (value,):
            if attrs.has(type(item)):
                found += _parts(item)
    return found


@given(messages)
def test_models_hold_only_what_the_wire_carries_and_bodies_are_copies(
    message: LocationMessage | ContactsMessage,
) -> None:
    # A field at its None or () default is not stored (the body copies __dict__), reads the
    # default, and survives pickle, copy and evolve; a caller editing a body edits no model.
    for part in _parts(message):
        fields = attrs.fields(type(part))
        absent = {
            a.name
            for a in fields
            if a.default in (None, ()) and getattr(part, a.name) in (None, ())
        }
        assert set(vars(part)) == {a.name for a in fields} - absent
        assert list(vars(part)) == [a.name for a in fields if a.name not in absent]
        for name in absent:
            assert getattr(part, name) == getattr(fields, name).default
        assert pickle.loads(pickle.dumps(part)) == part == copy.deepcopy(part) == attrs.evolve(part)
    before = REFERENCE.unstructure(message)
    body = unstructure(message)
    for value in list(body.values()):
        if isinstance(value, dict):
            value.clear()
        elif isinstance(value, list):
            for item in value:
                item.clear()
    body.clear()
    assert REFERENCE.unstructure(message) == before
    assert unstructure(message) == before


def test_every_model_has_a_generated_hook() -> None:
    from dialog360_async._converter import _MODEL_HOOKS

    assert set(_MODEL_HOOKS) == set(MODELS)


# -- any input: the generated __init__ against attrs' own ---------------------------------------

junk = st.sampled_from(
    [0, 1.5, True, b"x", ["a"], {"a": 1}, "\ud800", "a\udfffb", "\x00", Text("x"), Text("é")]
)
any_text = st.none() | text | junk
TEXT_FIELDS = {
    Location: ("name", "address"),
    Name: ("formatted_name", "first_name", "last_name", "middle_name", "suffix", "prefix"),
    Address: ("street", "city", "state", "zip", "country", "type"),
    Email: ("email", "type"),
    Phone: ("phone", "type", "wa_id"),
    Org: ("company", "department", "title"),
    Url: ("url", "type"),
}
coordinates = st.floats() | st.integers(-200, 200) | junk | st.just(10**400)
cards = st.lists(st.just(Contact(name=Name(formatted_name="A", first_name="A"))), max_size=2)
lists_of = {
    "addresses": Address(street="s"),
    "emails": Email(email="e"),
    "phones": Phone(phone="1"),
    "urls": Url(url="u"),
}


def _outcome(build: Any) -> tuple[Any, ...]:
    try:
        made = build()
    except ValidationError as error:
        return ("rejected", error.field, str(error))
    if not attrs.has(type(made)):
        return ("built", made, type(made))
    fields = attrs.fields(type(made))
    return ("built", tuple((getattr(made, a.name), type(getattr(made, a.name))) for a in fields))


def _same(cls: type[Any], kwargs: dict[str, Any]) -> None:
    def by_attrs() -> object:
        made = object.__new__(cls)
        cls.__init__.__wrapped__(made, **kwargs)
        return made

    assert _outcome(lambda: cls(**kwargs)) == _outcome(by_attrs)


@given(st.data())
def test_text_models_rule_as_attrs_does(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(sorted(TEXT_FIELDS, key=lambda c: c.__name__)))
    kwargs = {name: data.draw(any_text, label=name) for name in TEXT_FIELDS[cls]}
    if cls is Location:
        kwargs["latitude"] = data.draw(coordinates, label="latitude")
        kwargs["longitude"] = data.draw(coordinates, label="longitude")
    if cls is Address:
        kwargs["country_code"] = data.draw(st.none() | letters | any_text, label="country_code")
    _same(cls, kwargs)


@given(st.data())
def test_contacts_and_messages_rule_as_attrs_does(data: st.DataObject) -> None:
    kwargs: dict[str, Any] = {
        "name": data.draw(st.just(Name(formatted_name="A", last_name="B")) | junk, label="name"),
        "birthday": data.draw(
            st.none() | st.dates() | st.sampled_from(["1999-01-23", "1999-02-30", "19990123"]),
            label="birthday",
        ),
        "org": data.draw(st.none() | st.just(Org(company="C")) | junk, label="org"),
    }
    for field, item in lists_of.items():
        kwargs[field] = data.draw(
            st.lists(st.just(item) | junk, max_size=2) | st.just(()) | junk, label=field
        )
    _same(Contact, kwargs)
    to = data.draw(recipients | st.text(max_size=24) | junk, label="to")
    _same(ContactsMessage, {"to": to, "contacts": data.draw(cards | junk, label="contacts")})
    where = data.draw(st.just(Location(latitude=1, longitude=2)) | junk, label="location")
    _same(LocationMessage, {"to": to, "location": where})


def test_missing_and_unknown_keywords_refused_as_attrs_does() -> None:
    with pytest.raises(TypeError):
        Name()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Email(mail="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        LocationMessage(to="12345", location=Location(latitude=0, longitude=0), type="location")  # type: ignore[call-arg]


def test_evolve_still_validates() -> None:
    email = Email(email="a@b.c")
    assert attrs.evolve(email, type="WORK") == Email(email="a@b.c", type="WORK")
    with pytest.raises(ValidationError, match=r"Email\.type"):
        attrs.evolve(email, type=5)


# -- the other fast paths against their general paths -------------------------------------------


@given(st.text(max_size=24) | recipients)
def test_recipient_fast_path_agrees(value: str) -> None:
    fast = _outcome(lambda: _validation.recipient(value))
    assert fast == _outcome(lambda: _validation.recipient(Text(value)))


class Mail(Email):
    """A subclass: a valid item the fast path leaves to the general one."""


@given(st.lists(st.just(Email(email="e")) | st.just(Mail()) | st.just(Url(url="u")) | junk))
def test_items_fast_path_agrees(values: list[Any]) -> None:
    expected = _outcome(lambda: _models._items(iter(values), Email, "f"))
    assert _outcome(lambda: _models._items(values, Email, "f")) == expected
    assert _outcome(lambda: _models._items(tuple(values), Email, "f")) == expected


def _birthday_by_regex(value: object) -> str | None:
    # The rule before issue 14: the regex, then a real date.
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise ValidationError("Contact.birthday", f"must be a real date as YYYY-MM-DD, got {value!r}")


@given(
    st.text(alphabet="0123456789-W+ T:Z.\u0661\u0662x", min_size=8, max_size=12)
    | st.dates().map(datetime.date.isoformat)
    | st.from_regex(r"[0-9]{4}-[0-9W]{2,3}-[0-9]{1,2}", fullmatch=True)
)
def test_birthday_shape_check_agrees_with_the_regex(value: str) -> None:
    assert _outcome(lambda: _validation.birthday(value)) == _outcome(
        lambda: _birthday_by_regex(value)
    )


@pytest.mark.parametrize("cls", MODELS + RECORDS, ids=lambda cls: cls.__name__)
def test_generated_init_has_attrs_signature(cls: type[Any]) -> None:
    generated = inspect.signature(cls.__init__, follow_wrapped=False)
    by_attrs = inspect.signature(cls.__init__.__wrapped__)
    assert [(p.name, p.kind, p.default) for p in generated.parameters.values()] == [
        (p.name, p.kind, p.default) for p in by_attrs.parameters.values()
    ]
    assert inspect.signature(cls) == inspect.signature(cls.__init__.__wrapped__).replace(
        parameters=list(by_attrs.parameters.values())[1:]
    )


@given(st.data())
def test_records_store_as_attrs_does(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(RECORDS))
    names = [a.name for a in attrs.fields(cls)]
    # Every keyword or a random subset of the optional ones: defaults must match too.
    required = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING]
    chosen = required + data.draw(st.lists(st.sampled_from(names), unique=True), label="given")
    kwargs = {name: data.draw(any_text, label=name) for name in dict.fromkeys(chosen)}
    _same(cls, kwargs)
    made = cls(**kwargs)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.status = "sent"
    assert made == attrs.evolve(made)
