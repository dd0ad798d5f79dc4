"""Injected faults of the fake: scripted answers per route and failing recipients."""

from __future__ import annotations

import re
from collections import deque

import attrs
from aiohttp import web

from ._models import FakeResponse


@attrs.define
class _Script:
    method: str
    pattern: str
    regex: re.Pattern[str]
    responses: deque[FakeResponse]


@attrs.define
class Failure:
    """An API error that sends to one recipient answer with, ``remaining`` more times."""

    code: int
    status: int
    message: str
    remaining: int | None


def _compile(pattern: str) -> re.Pattern[str]:
    # "{name}" matches one path segment; everything else is literal.
    parts = re.split(r"(\{[^/{}]+\})", pattern)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


class Faults:
    """Scripted answers (consumed in order, per route) and per-recipient send failures."""

    def __init__(self) -> None:
        self._scripts: list[_Script] = []
        self._failures: dict[str, Failure] = {}

    def script(self, method: str, path: str, responses: tuple[FakeResponse, ...]) -> None:
        """Queue ``responses`` for a route (see `FakeDialog360.script`)."""
        method = method.upper()
        path = path.split("?", 1)[0]
        for entry in self._scripts:
            if entry.method == method and entry.pattern == path:
                entry.responses.extend(responses)
                return
        self._scripts.append(_Script(method, path, _compile(path), deque(responses)))

    def fail(self, wa_id: str, failure: Failure) -> None:
        """Make sends to ``wa_id`` answer with ``failure``."""
        self._failures[wa_id] = failure

    def take_failure(self, wa_id: str) -> Failure | None:
        """Consume one injected failure for ``wa_id``, if any."""
        failure = self._failures.get(wa_id)
        if failure is None:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[wa_id]
        return failure

    def take_script(self, method: str, path: str) -> FakeResponse | None:
        """Consume the next scripted answer for this request, if one is queued."""
        for entry in self._scripts:
            if entry.method in (method, "*") and entry.regex.fullmatch(path):
                response = entry.responses.popleft()
                if not entry.responses:
                    self._scripts.remove(entry)
                return response
        return None

    def clear(self) -> None:
        """Drop every queued script and injected failure."""
        self._scripts.clear()
        self._failures.clear()


def answer(request: web.Request, scripted: FakeResponse) -> web.StreamResponse:
    """The response a scripted answer stands for (``close`` drops the connection instead)."""
    headers = dict(scripted.headers)
    if scripted.close:
        if request.transport is not None:
            request.transport.close()
        # Nothing reaches the client: its transport is already closed.
        return web.Response(status=204)
    if scripted.redirect_to is not None:
        headers["Location"] = scripted.redirect_to
        status = scripted.status if 300 <= scripted.status < 400 else 307
        return web.Response(status=status, headers=headers)
    if scripted.body is not None:
        return web.Response(status=scripted.status, body=scripted.body, headers=headers)
    if scripted.json is not None:
        return web.json_response(scripted.json, status=scripted.status, headers=headers)
    return web.Response(status=scripted.status, headers=headers)
