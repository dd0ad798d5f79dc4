"""What the fake has seen: counters (always kept) and recorded requests (bounded)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ._models import REDACTED, SECRET_HEADERS, SECRET_QUERY, RecordedRequest

__all__ = ["Stats", "WebhookCounters"]

WEBHOOK_CONFIG = "/v1/configs/webhook"


def _route_name(route: web.AbstractRoute) -> str:
    resource = route.resource
    pattern = "?" if resource is None else resource.canonical
    return f"{route.method} {pattern}"


class Stats:
    """Counters of requests, answers, sends and throttling, plus the recorded requests.

    Requests are counted by route pattern (``POST /v1/contacts/{phone}/block``), never by raw
    path, so the counters stay small and never hold anything a client put in a URL.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.sends: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.total = 0
        self.unmatched = 0
        self.dropped = 0
        self.closed = 0
        self.routes: Counter[web.AbstractRoute] = Counter()
        self.statuses: Counter[int] = Counter()
        self.throttled: Counter[str] = Counter()

    def arrived(self, route: web.AbstractRoute) -> None:
        """Count a request that is being handled (``in_flight`` until `left`)."""
        self.total += 1
        # aiohttp gives an unmatched request a fresh system route: count those apart.
        if route.resource is None:
            self.unmatched += 1
        else:
            self.routes[route] += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def left(self) -> None:
        """A request's handling ended (answered, dropped or cancelled)."""
        self.in_flight -= 1

    def record(
        self, request: web.Request, json: Any, channel: str | None, limit: int | None
    ) -> None:
        """Keep a redacted copy of ``request``; past ``limit`` the oldest is dropped."""
        headers = CIMultiDict(
            (name, REDACTED if name.lower() in SECRET_HEADERS else value)
            for name, value in request.headers.items()
        )
        query = dict(request.query)
        for name in query:
            if name.lower() in SECRET_QUERY:
                query[name] = REDACTED
        if request.path == WEBHOOK_CONFIG and isinstance(json, dict):
            sent = json.get("headers")
            if isinstance(sent, dict):  # webhook headers are the receiver's credentials
                json = {**json, "headers": dict.fromkeys(sent, REDACTED)}
        kept = self.requests
        kept.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=query,
                headers=CIMultiDictProxy(headers),
                json=json,
                channel=channel,
            )
        )
        if limit is not None and len(kept) > limit:
            excess = len(kept) - max(limit, 0)
            del kept[:excess]
            self.dropped += excess

    def duplicates(self) -> dict[str, int]:
        """Recipients that were sent more than one accepted message, with their counts."""
        return {wa_id: count for wa_id, count in self.sends.items() if count > 1}

    def clear(self) -> None:
        """Forget everything seen so far (requests still in flight stay counted as such)."""
        self.requests.clear()
        self.sends.clear()
        self.routes.clear()
        self.statuses.clear()
        self.throttled.clear()
        self.total = self.unmatched = self.dropped = self.closed = 0
        self.max_in_flight = self.in_flight

    def snapshot(
        self, *, recording: bool, limit: int | None, by_recipient: bool = False
    ) -> dict[str, Any]:
        """Every counter as plain JSON-ready data (the body of ``GET /_fake/stats``)."""
        by_route: Counter[str] = Counter()
        for route, count in self.routes.items():
            by_route[_route_name(route)] += count
        duplicates = self.duplicates()
        sends: dict[str, Any] = {
            "total": sum(self.sends.values()),
            "recipients": len(self.sends),
            "duplicate_sends": sum(count - 1 for count in duplicates.values()),
            "duplicates": duplicates,
        }
        if by_recipient:
            sends["by_recipient"] = dict(self.sends)
        return {
            "requests": {
                "total": self.total,
                "by_route": dict(sorted(by_route.items())),
                "unmatched": self.unmatched,
            },
            "responses": {
                "by_status": {str(status): n for status, n in sorted(self.statuses.items())},
                "closed": self.closed,
            },
            "sends": sends,
            "throttled": {
                "total": sum(self.throttled.values()),
                "by_reason": dict(sorted(self.throttled.items())),
            },
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "recorded": {
                "enabled": recording,
                "kept": len(self.requests),
                "limit": limit,
                "dropped": self.dropped,
            },
        }


_COUNTERS = (
    "posts",
    "delivered",
    "redeliveries",
    "failed_attempts",
    "timeouts",
    "gave_up",
    "statuses",
    "messages",
    "duplicates",
    "early",
    "not_loopback",
)


class WebhookCounters:
    """What the emitter did, as ``GET /_fake/stats`` shows it under ``webhooks``."""

    __slots__ = _COUNTERS
    posts: int
    delivered: int
    redeliveries: int
    failed_attempts: int
    timeouts: int
    gave_up: int
    statuses: int
    messages: int
    duplicates: int
    early: int
    not_loopback: int

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        for name in _COUNTERS:
            setattr(self, name, 0)

    def snapshot(self, pending: int) -> dict[str, int]:
        return {**{name: getattr(self, name) for name in _COUNTERS}, "pending": pending}
