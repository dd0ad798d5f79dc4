"""The fake's own routes under ``/_fake/``: its counters, its recording and a reset.

They need no key (the fake is a test server on loopback) and show none: recorded requests
carry redacted headers, and the counters name routes, never raw paths. Requests to them are
neither counted nor recorded, so polling the stats does not change them.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from aiohttp import web

from ._models import RecordedRequest

CONTROL_PREFIX: Final = "/_fake/"
_YES = frozenset({"1", "true", "yes"})


class Controlled(Protocol):
    """What the control routes need from the fake."""

    @property
    def requests(self) -> list[RecordedRequest]: ...

    def stats(self, *, by_recipient: bool = False) -> dict[str, Any]: ...

    def reset(self, *, state: bool = False) -> None: ...


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in _YES


def recorded_json(recorded: RecordedRequest) -> dict[str, Any]:
    """One recorded request as JSON-ready data (headers already redacted)."""
    return {
        "method": recorded.method,
        "path": recorded.path,
        "query": dict(recorded.query),
        "headers": dict(recorded.headers.items()),
        "json": recorded.json,
        "channel": recorded.channel,
    }


def add_control_routes(app: web.Application, fake: Controlled) -> None:
    """Register ``GET /_fake/stats``, ``GET /_fake/requests`` and ``POST /_fake/reset``."""

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(fake.stats(by_recipient=_flag(request, "by_recipient")))

    async def requests(request: web.Request) -> web.StreamResponse:
        return web.json_response([recorded_json(recorded) for recorded in fake.requests])

    async def reset(request: web.Request) -> web.StreamResponse:
        state = _flag(request, "state")
        fake.reset(state=state)
        return web.json_response({"reset": True, "state": state})

    app.router.add_routes(
        [
            web.get(CONTROL_PREFIX + "stats", stats, allow_head=False),
            web.get(CONTROL_PREFIX + "requests", requests, allow_head=False),
            web.post(CONTROL_PREFIX + "reset", reset),
        ]
    )
