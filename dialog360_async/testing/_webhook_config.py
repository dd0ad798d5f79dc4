"""A channel's webhook: its target, the URL rules, and ``GET``/``POST /v1/configs/webhook``.

360dialog sets the webhook per number with ``POST <base>/v1/configs/webhook`` and ``{"url",
"headers"}`` on both hosts, and answers (and ``GET`` returns) ``{"url", "headers"}``
(../shared/docs/webhooks-and-statuses.md §2.1). Its URL rules (§2.2): HTTPS, no explicit port,
no ``_`` in the host or in header names. **Deviation:** a loopback URL (127.0.0.0/8, ::1,
localhost) may use ``http://`` and a port, so tests can point the fake at a local receiver. A
valid public URL is stored and shown, but the fake never POSTs to it (it is a test server).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web
from yarl import URL

from .._transport import is_loopback
from ._bodies import gateway_error
from ._handlers import REQUEST_BODY, BaseApi, Reply, Server, guarded

__all__ = ["Target", "add_webhook_config_routes", "target"]

_TOKEN = re.compile(r"^[!#$%&'*+.^`|~0-9A-Za-z-]+$")  # an HTTP header name, minus "_"
_MAX_URL = 2048


@attrs.frozen(kw_only=True)
class Target:
    """Where a channel's webhooks go: a URL and the headers sent with every POST."""

    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    loopback: bool = False

    def json(self) -> dict[str, Any]:
        return {"url": self.url, "headers": dict(self.headers)}


def target(url: object, headers: object = None) -> Target:
    """Check ``url`` and ``headers`` against 360dialog's rules; raise ValueError if broken.

    The message never repeats a value (a header may hold a secret).
    """
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        raise ValueError(f"url must be a non-empty string of at most {_MAX_URL} characters")
    try:
        parsed = URL(url)
    except ValueError:
        raise ValueError("url is not a valid URL") from None
    host = parsed.host
    if not parsed.is_absolute() or not host or parsed.scheme not in ("http", "https"):
        raise ValueError("url must be an absolute https:// URL")
    loopback = is_loopback(host)
    if not loopback:
        if parsed.scheme != "https":
            raise ValueError("url must use https://")
        if parsed.explicit_port is not None:
            raise ValueError("url must not name a port (the webhook is called on 443)")
        if "_" in host:
            raise ValueError("url must not have '_' in its host name")
    if headers is None:
        headers = {}
    if not isinstance(headers, Mapping):
        raise ValueError("headers must be an object of header names to string values")
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValueError("header names must be HTTP tokens without '_'")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ValueError("header values must be strings on one line")
        pairs.append((name, value))
    return Target(url=url, headers=tuple(pairs), loopback=loopback)


class _ConfigApi(BaseApi):
    @guarded
    async def get(self, request: web.Request) -> web.StreamResponse:
        channel = self.d360(request)
        found = self.fake._webhook_target(channel)
        body = {"url": None, "headers": {}} if found is None else found.json()
        return web.json_response(body)

    @guarded
    async def post(self, request: web.Request) -> web.StreamResponse:
        channel = self.d360(request)
        body = REQUEST_BODY.get()
        if not isinstance(body, dict):
            raise Reply(gateway_error(400, "The request body must be a JSON object."), 400)
        try:
            found = target(body.get("url"), body.get("headers"))
        except ValueError as err:
            raise Reply(gateway_error(400, f"Invalid webhook: {err}."), 400) from None
        channel.webhook = found
        return web.json_response(found.json())


def add_webhook_config_routes(app: web.Application, fake: Server) -> None:
    """Register ``GET`` and ``POST /v1/configs/webhook`` (the path is the same on both hosts)."""
    api = _ConfigApi(fake)
    app.router.add_routes(
        [
            web.get("/v1/configs/webhook", api.get, allow_head=False),
            web.post("/v1/configs/webhook", api.post),
        ]
    )
