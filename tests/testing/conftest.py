"""Fixtures for the FakeDialog360 tests; helpers are fixtures so any import mode works."""

from __future__ import annotations

import json as json_module
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from dialog360_async.testing import FakeDialog360

KEY = "secret-key-1"


class ManualClock:
    """A clock the tests move by hand, so rate-limit tests never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Wire:
    """Plain aiohttp calls against one fake, returning ``(status, parsed JSON or None)``."""

    key = KEY
    partner_key = "partner-key"

    def __init__(self, session: aiohttp.ClientSession, fake: FakeDialog360) -> None:
        self.session = session
        self.fake = fake

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        key: str | None = KEY,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        base: str | None = None,
    ) -> tuple[int, Any]:
        all_headers = {} if key is None else {"D360-API-KEY": key}
        all_headers.update(headers or {})
        url = (base or self.fake.url) + path
        async with self.session.request(
            method, url, json=json, headers=all_headers, params=params, allow_redirects=False
        ) as response:
            raw = await response.read()
            if not raw:
                return response.status, None
            try:
                return response.status, json_module.loads(raw)
            except ValueError:
                return response.status, raw

    async def partner(
        self, method: str, channel_id: str, json: Any = None, partner_id: str = "examplePA"
    ) -> tuple[int, Any]:
        path = f"/partners/{partner_id}/channels/{channel_id}/block_users"
        return await self.call(
            method,
            path,
            json=json,
            key=None,
            headers={"X-API-Key": self.partner_key},
            base=self.fake.partner_url,
        )

    @staticmethod
    def location(to: str = "+1 555 0001", *, cloud: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "to": to,
            "type": "location",
            "location": {"latitude": 37.758056, "longitude": -122.425332, "name": "HQ"},
        }
        if cloud:
            body["messaging_product"] = "whatsapp"
        return body

    @staticmethod
    def contacts(to: str = "15550001", *, cloud: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "to": to,
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"},
                    "birthday": "1815-12-10",
                    "phones": [{"phone": "+15550002", "type": "WORK", "wa_id": "15550002"}],
                    "emails": [{"email": "ada@example.com", "type": "WORK"}],
                    "org": {"company": "Analytical"},
                }
            ],
        }
        if cloud:
            body["messaging_product"] = "whatsapp"
        return body

    @staticmethod
    def block(*users: str, cloud: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"block_users": [{"user": user} for user in users]}
        if cloud:
            body["messaging_product"] = "whatsapp"
        return body


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeDialog360]:
    async with FakeDialog360(clock=clock) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
        yield client


@pytest.fixture
def wire(session: aiohttp.ClientSession, fake: FakeDialog360) -> Wire:
    return Wire(session, fake)
