"""Fixtures for the FakeDialog360 tests; helpers are fixtures so any import mode works."""

from __future__ import annotations

import asyncio
import json as json_module
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

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


# -- webhooks ---------------------------------------------------------------------------------


class Post:
    """One webhook POST a `Receiver` got: raw bytes, headers, parsed JSON, answer given."""

    def __init__(self, raw: bytes, headers: Mapping[str, str], answered: int) -> None:
        self.raw = raw
        self.headers = headers
        self.json: Any = json_module.loads(raw)
        self.answered = answered

    def statuses(self) -> list[dict[str, Any]]:
        """Every ``statuses[]`` item, in body order (both payload shapes)."""
        return [item for value in self.values() for item in value.get("statuses", ())]

    def messages(self) -> list[dict[str, Any]]:
        return [item for value in self.values() for item in value.get("messages", ())]

    def values(self) -> list[dict[str, Any]]:
        """Cloud: every ``entry[].changes[].value``; On-Premise: the body itself."""
        if "entry" not in self.json:
            return [self.json]
        return [c["value"] for e in self.json["entry"] for c in e["changes"]]


class Receiver:
    """A real aiohttp.web webhook endpoint on 127.0.0.1 that records every POST.

    ``answers`` is consumed one per POST: ``(status, delay)``; when empty it answers 200 at
    once. ``on_post`` (sync) runs as each POST arrives, before the answer.
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.answers: list[tuple[int, float]] = []
        self.on_post: Any = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        status, delay = self.answers.pop(0) if self.answers else (200, 0.0)
        post = Post(raw, dict(request.headers), status)
        self.posts.append(post)
        if self.on_post is not None:
            self.on_post(post)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text="ok")

    def statuses(self, *, answered: int | None = 200) -> list[dict[str, Any]]:
        """Every status received (in arrival order), by default only from POSTs answered 200."""
        return [
            item
            for post in self.posts
            if answered is None or post.answered == answered
            for item in post.statuses()
        ]

    def pairs(self) -> list[tuple[str, str]]:
        return [(item["id"], item["status"]) for item in self.statuses()]

    def by_message(self) -> dict[str, list[str]]:
        """Statuses per message id, in arrival order."""
        seen: dict[str, list[str]] = {}
        for message_id, value in self.pairs():
            seen.setdefault(message_id, []).append(value)
        return seen


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.close()
