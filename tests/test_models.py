"""Model validation: every rule raises ValidationError at construction, naming the field."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest
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
    Phone,
    Url,
    ValidationError,
)
from dialog360_async._converter import unstructure

NAME = Name(formatted_name="Ada Lovelace", first_name="Ada")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latitude": 90.0001, "longitude": 0}, "Location.latitude"),
        ({"latitude": -91, "longitude": 0}, "Location.latitude"),
        ({"latitude": math.nan, "longitude": 0}, "Location.latitude"),
        ({"latitude": 0, "longitude": math.inf}, "Location.longitude"),
        ({"latitude": 0, "longitude": 180.5}, "Location.longitude"),
        ({"latitude": "52.5", "longitude": 0}, "Location.latitude"),
        ({"latitude": True, "longitude": 0}, "Location.latitude"),
        ({"latitude": 0, "longitude": 0, "name": 5}, "Location.name"),
    ],
)
def test_location_rejects(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Location(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_location_edges_accepted() -> None:
    loc = Location(latitude=-90, longitude=180)
    assert (loc.latitude, loc.longitude) == (-90.0, 180.0)
    assert isinstance(loc.latitude, float)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"formatted_name": "", "first_name": "A"}, "Name.formatted_name"),
        ({"formatted_name": "   ", "first_name": "A"}, "Name.formatted_name"),
        ({"formatted_name": "Ada"}, "Name"),
        ({"formatted_name": "Ada", "first_name": " "}, "Name"),
        ({"formatted_name": None, "first_name": "A"}, "Name.formatted_name"),
    ],
)
def test_name_rules(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Name(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("part", ["first_name", "last_name", "middle_name", "suffix", "prefix"])
def test_any_one_name_part_is_enough(part: str) -> None:
    assert getattr(Name(formatted_name="X", **{part: "Y"}), part) == "Y"


@pytest.mark.parametrize("bad", ["1999-02-30", "99-01-23", "1999/01/23", "", "1999-1-2", 19990123])
def test_birthday_must_be_a_real_date(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"Contact\.birthday"):
        Contact(name=NAME, birthday=bad)  # type: ignore[arg-type]


def test_birthday_accepts_date_objects() -> None:
    birthday = datetime.date(1815, 12, 10)
    assert Contact(name=NAME, birthday=birthday).birthday == "1815-12-10"  # type: ignore[arg-type]
    assert Contact(name=NAME, birthday="2000-02-29").birthday == "2000-02-29"


@pytest.mark.parametrize("code", ["USA", "U", "1A", "", "ü1"])
def test_country_code_two_letters(code: str) -> None:
    with pytest.raises(ValidationError, match="country_code"):
        Address(country_code=code)


def test_contacts_count_bounds() -> None:
    card = Contact(name=NAME)
    assert len(ContactsMessage(to="4915112345678", contacts=[card] * 257).contacts) == 257
    with pytest.raises(ValidationError, match="1 to 257"):
        ContactsMessage(to="4915112345678", contacts=[card] * 258)
    with pytest.raises(ValidationError, match="1 to 257"):
        ContactsMessage(to="4915112345678", contacts=[])


def test_contact_lists_must_hold_their_type() -> None:
    with pytest.raises(ValidationError, match=r"Contact\.phones\[1\]"):
        Contact(name=NAME, phones=[Phone(phone="1"), Email(email="x")])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=r"Contact\.name"):
        Contact(name="Ada")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"Contact\.emails"):
        Contact(name=NAME, emails="a@b.c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+49 151 1234-5678", "+4915112345678"),
        ("(650) 555-1234", "6505551234"),
        ("16505551234", "16505551234"),
        (" +1.650.555.1234 ", "+16505551234"),
    ],
)
def test_recipient_normalized(raw: str, normalized: str) -> None:
    loc = Location(latitude=0, longitude=0)
    assert LocationMessage(to=raw, location=loc).to == normalized


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "abc", "+49 151 CALL ME", "1234", "++4915112345678", 4915112345678, None, "1" * 21],
)
def test_recipient_rejected(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        LocationMessage(to=bad, location=Location(latitude=0, longitude=0))  # type: ignore[arg-type]
    assert info.value.field == "to"


def test_message_needs_model_instances() -> None:
    with pytest.raises(ValidationError, match=r"LocationMessage\.location"):
        LocationMessage(to="4915112345678", location={"latitude": 1, "longitude": 2})  # type: ignore[arg-type]


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="latitude"):
        Location(latitude=100, longitude=0)


def test_models_are_frozen_and_keyword_only() -> None:
    loc = Location(latitude=1, longitude=2)
    with pytest.raises(AttributeError):
        loc.latitude = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Location(1, 2)  # type: ignore[misc]


# --- property tests ---------------------------------------------------------------------------

text = st.text(min_size=1, max_size=20)
opt_text = st.none() | text
names = st.builds(
    Name,
    formatted_name=text.filter(str.strip),
    first_name=text.filter(str.strip),
    last_name=opt_text,
    middle_name=opt_text,
    suffix=opt_text,
    prefix=opt_text,
)
letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
contacts = st.builds(
    Contact,
    name=names,
    addresses=st.lists(
        st.builds(
            Address,
            street=opt_text,
            city=opt_text,
            country_code=st.none() | letters,
            type=st.sampled_from([None, "HOME", "WORK"]),
        ),
        max_size=2,
    ),
    birthday=st.none() | st.dates().map(lambda d: d.isoformat() if d.year >= 1000 else None),
    emails=st.lists(st.builds(Email, email=opt_text, type=opt_text), max_size=2),
    org=st.none() | st.builds(Org, company=opt_text, department=opt_text, title=opt_text),
    phones=st.lists(st.builds(Phone, phone=opt_text, type=opt_text, wa_id=opt_text), max_size=2),
    urls=st.lists(st.builds(Url, url=opt_text, type=opt_text), max_size=2),
)
recipients = st.from_regex(r"\+?[1-9][0-9]{6,14}", fullmatch=True)
locations = st.builds(
    Location,
    latitude=st.floats(-90, 90),
    longitude=st.floats(-180, 180),
    name=opt_text,
    address=opt_text,
)
messages = st.builds(LocationMessage, to=recipients, location=locations) | st.builds(
    ContactsMessage, to=recipients, contacts=st.lists(contacts, min_size=1, max_size=3)
)


def _has_null(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


@given(messages)
def test_valid_messages_unstructure_without_null(
    message: LocationMessage | ContactsMessage,
) -> None:
    body = unstructure(message)
    assert not _has_null(body)
    assert not _has_null(json.loads(json.dumps(body)))
    assert body["type"] == message.type
    assert body["to"] == message.to


@given(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (-90 <= x <= 90)),
    st.floats(-180, 180),
)
def test_out_of_range_latitude_always_rejected(lat: float, lon: float) -> None:
    with pytest.raises(ValidationError):
        Location(latitude=lat, longitude=lon)


@given(
    st.text().filter(
        lambda s: (
            not s.strip()
            .lstrip("+")
            .replace(" ", "")
            .replace("-", "")
            .replace("(", "")
            .replace(")", "")
            .replace(".", "")
            .isdigit()
        )
    )
)
def test_non_numeric_recipients_always_rejected(to: str) -> None:
    with pytest.raises(ValidationError):
        LocationMessage(to=to, location=Location(latitude=0, longitude=0))


@given(st.text(min_size=60, max_size=80))
def test_long_reasons_rejected(reason: str) -> None:
    from dialog360_async._validation import reason as check_reason

    with pytest.raises(ValidationError):
        check_reason(reason)


# Any invalid input raises ValidationError and sends nothing: the client points at a closed
# port with retries off, so an attempted request would surface as a TransportError instead.
def _closed_port_client() -> Any:
    import socket

    from dialog360_async import Dialog360Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Dialog360Client("k", base_url=f"http://127.0.0.1:{port}", retry=None)


bad_recipients = st.one_of(
    st.text().filter(lambda s: not any(c.isdigit() for c in s)),
    st.from_regex(r"\+?[0-9]{1,4}", fullmatch=True),
    st.from_regex(r"[0-9]{21,30}", fullmatch=True),
    st.integers(),
    st.none(),
)


@given(bad_recipients, st.sampled_from(["location", "contacts", "block", "unblock"]))
def test_invalid_recipient_raises_before_any_io(to: Any, call: str) -> None:
    import asyncio

    async def attempt() -> None:
        async with _closed_port_client() as client:
            if call == "location":
                await client.send_location(to, Location(latitude=0, longitude=0))
            elif call == "contacts":
                await client.send_contacts(to, Contact(name=NAME))
            elif call == "block":
                await client.block_users([to])
            else:
                await client.unblock_users([to])

    with pytest.raises(ValidationError):
        asyncio.run(attempt())


@given(
    st.one_of(
        st.floats().filter(lambda x: not -90 <= x <= 90),
        st.text(),
        st.none(),
        st.booleans(),
    ),
    st.one_of(st.floats().filter(lambda x: not -180 <= x <= 180), st.text(), st.none()),
)
def test_invalid_coordinates_raise_before_any_io(lat: Any, lon: Any) -> None:
    import asyncio

    async def attempt() -> None:
        async with _closed_port_client() as client:
            await client.send_location("+4915112345678", Location(latitude=lat, longitude=lon))

    with pytest.raises(ValidationError):
        asyncio.run(attempt())
