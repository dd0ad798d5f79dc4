"""What the scenarios share: the messages, the hand-written aiohttp call, pywa, a worker pool."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp

from dialog360_async import (
    Address,
    Contact,
    Dialog360Client,
    Email,
    Location,
    LocationMessage,
    Name,
    Org,
    Phone,
    Url,
)
from dialog360_async.testing import SEED_CONTACT_CARD

KEY = "bench-key"
PHONE_ID = "106540352242922"
GRAPH_VERSION = "v21.0"

LATITUDE, LONGITUDE = 52.5163, 13.3777
PLACE, ADDRESS = "Brandenburg Gate", "Pariser Platz, 10117 Berlin"
WHERE = Location(latitude=LATITUDE, longitude=LONGITUDE, name=PLACE, address=ADDRESS)

# The full seed contact of tests/test_converter.py (SEED_CONTACTS): every field filled in.
SEED_CARD: dict[str, Any] = SEED_CONTACT_CARD
SEED_CONTACT = Contact(
    name=Name(**SEED_CARD["name"]),
    birthday=SEED_CARD["birthday"],
    addresses=[Address(**a) for a in SEED_CARD["addresses"]],
    emails=[Email(**e) for e in SEED_CARD["emails"]],
    org=Org(**SEED_CARD["org"]),
    phones=[Phone(**p) for p in SEED_CARD["phones"]],
    urls=[Url(**u) for u in SEED_CARD["urls"]],
)


def seed_contact() -> Contact:
    """The seed card built as a caller writes it, from literals: the per-message build."""
    return Contact(
        name=Name(
            formatted_name="NAME",
            first_name="FIRST_NAME",
            last_name="LAST_NAME",
            middle_name="MIDDLE_NAME",
            suffix="SUFFIX",
            prefix="PREFIX",
        ),
        birthday="1999-01-23",
        addresses=[
            Address(
                street="STREET",
                city="CITY",
                state="STATE",
                zip="ZIP",
                country="COUNTRY",
                country_code="US",
                type="HOME",
            ),
            Address(
                street="STREET",
                city="CITY",
                state="STATE",
                zip="ZIP",
                country="COUNTRY",
                country_code="US",
                type="WORK",
            ),
        ],
        emails=[Email(email="EMAIL", type="WORK"), Email(email="EMAIL", type="HOME")],
        org=Org(company="COMPANY", department="DEPARTMENT", title="TITLE"),
        phones=[
            Phone(phone="PHONE_NUMBER", type="HOME"),
            Phone(phone="PHONE_NUMBER", type="WORK", wa_id="PHONE_OR_WA_ID"),
        ],
        urls=[Url(url="URL", type="WORK"), Url(url="URL", type="HOME")],
    )


def seed_card() -> dict[str, Any]:
    """The seed card as the hand-written caller writes it per message: a dict literal."""
    return {
        "addresses": [
            {
                "street": "STREET",
                "city": "CITY",
                "state": "STATE",
                "zip": "ZIP",
                "country": "COUNTRY",
                "country_code": "US",
                "type": "HOME",
            },
            {
                "street": "STREET",
                "city": "CITY",
                "state": "STATE",
                "zip": "ZIP",
                "country": "COUNTRY",
                "country_code": "US",
                "type": "WORK",
            },
        ],
        "birthday": "1999-01-23",
        "emails": [{"email": "EMAIL", "type": "WORK"}, {"email": "EMAIL", "type": "HOME"}],
        "name": {
            "formatted_name": "NAME",
            "first_name": "FIRST_NAME",
            "last_name": "LAST_NAME",
            "middle_name": "MIDDLE_NAME",
            "suffix": "SUFFIX",
            "prefix": "PREFIX",
        },
        "org": {"company": "COMPANY", "department": "DEPARTMENT", "title": "TITLE"},
        "phones": [
            {"phone": "PHONE_NUMBER", "type": "HOME"},
            {"phone": "PHONE_NUMBER", "type": "WORK", "wa_id": "PHONE_OR_WA_ID"},
        ],
        "urls": [{"url": "URL", "type": "WORK"}, {"url": "URL", "type": "HOME"}],
    }


def where() -> Location:
    """The seed location built per message, as a caller writes it."""
    return Location(latitude=LATITUDE, longitude=LONGITUDE, name=PLACE, address=ADDRESS)


def recipients(count: int) -> list[str]:
    """Distinct recipients, built before any run so that no run pays for them."""
    return [f"+1650{n:07d}" for n in range(count)]


def location_messages(to: list[str], count: int) -> Iterator[LocationMessage]:
    """What a user of the bulk sender writes: one message per recipient, lazily."""
    for n in range(count):
        yield LocationMessage(to=to[n], location=WHERE)


# -- the hand-written aiohttp call -----------------------------------------------------------


def raw_location_body(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "location",
        "location": {
            "latitude": LATITUDE,
            "longitude": LONGITUDE,
            "name": PLACE,
            "address": ADDRESS,
        },
    }


def raw_contacts_body(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "contacts",
        "contacts": [SEED_CARD],
    }


def raw_contacts_body_built(to: str) -> dict[str, Any]:
    """The hand-written contacts body with its card written out per message."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "contacts",
        "contacts": [seed_card()],
    }


class Raw:
    """The usual hand-written call: ``json.dumps`` a dict, ``post``, ``await resp.json()``."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.url = base_url + "/messages"
        self.headers = {"D360-API-KEY": KEY, "Content-Type": "application/json"}

    async def send(self, body: dict[str, Any]) -> Any:
        async with self.session.post(self.url, data=json.dumps(body), headers=self.headers) as resp:
            answer = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"raw send failed: {resp.status} {answer}")
            return answer


def check_same_bodies(client: Dialog360Client) -> None:
    """The SDK and the hand-written call must post the same JSON, or the ratio means nothing."""
    from dialog360_async import ContactsMessage

    to = "+16505550000"
    sdk = client._message_body(LocationMessage(to=to, location=WHERE), None)
    assert sdk == raw_location_body(to), (sdk, raw_location_body(to))
    sdk = client._message_body(ContactsMessage(to=to, contacts=(SEED_CONTACT,)), None)
    assert sdk == raw_contacts_body(to), (sdk, raw_contacts_body(to))
    sdk = client._message_body(ContactsMessage(to=to, contacts=(seed_contact(),)), None)
    assert sdk == raw_contacts_body_built(to), (sdk, raw_contacts_body_built(to))
    assert seed_card() == SEED_CARD, "the per-message card must be the seed card"
    sdk = client._message_body(LocationMessage(to=to, location=where()), None)
    assert sdk == raw_location_body(to), (sdk, raw_location_body(to))


# -- pywa ---------------------------------------------------------------------------------------


def pywa_version() -> str | None:
    """pywa's version, or None when its async client cannot be imported."""
    try:
        import pywa_async  # noqa: F401
    except ImportError:
        return None
    try:
        return importlib.metadata.version("pywa")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Pywa:
    """pywa's async client, pointed at the fake's Meta-style route."""

    def __init__(self, wa: Any, contact: Any) -> None:
        self.wa = wa
        self.contact = contact

    async def send_location(self, to: str) -> Any:
        return await self.wa.send_location(
            to=to, latitude=LATITUDE, longitude=LONGITUDE, name=PLACE, address=ADDRESS
        )

    async def send_contacts(self, to: str) -> Any:
        return await self.wa.send_contact(to=to, contact=self.contact)


@contextlib.asynccontextmanager
async def pywa_client(base_url: str) -> AsyncIterator[Pywa | None]:
    """pywa's client, or None when pywa is not installed."""
    try:
        import httpx
        from pywa_async import WhatsApp
        from pywa_async.types import Contact as PywaContact
    except ImportError:
        yield None
        return
    async with httpx.AsyncClient() as session:
        wa = WhatsApp(phone_id=PHONE_ID, token=KEY, session=session)
        session.base_url = f"{base_url}/{GRAPH_VERSION}"  # pywa points it at graph.facebook.com
        yield Pywa(wa, PywaContact.from_dict(SEED_CARD))


# -- driving a run -------------------------------------------------------------------------------


async def pool(send: Callable[[int], Awaitable[object]], count: int, concurrency: int) -> int:
    """``concurrency`` workers share one iterator of message numbers: a hand-written pool."""
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            await send(n)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count


async def semaphore(send: Callable[[int], Awaitable[object]], count: int, concurrency: int) -> int:
    """One task per message, at most ``concurrency`` inside an ``asyncio.Semaphore``."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            await send(n)

    await asyncio.gather(*(one(n) for n in range(count)))
    return count
