"""`FakeDialog360`: lifecycle, fault injection and observability."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from ._bodies import digits
from ._control import CONTROL_PREFIX, add_control_routes
from ._delivery import WebhookPlan
from ._faults import Failure, Faults, answer
from ._handlers import INVALID_JSON, REQUEST_BODY
from ._models import FakeResponse, RecordedRequest
from ._routes import add_routes
from ._state import Channel, Channels
from ._stats import Stats
from ._templates import TemplateSide
from ._webhook_api import WebhookSide
from ._webhook_config import add_webhook_config_routes

__all__ = ["FakeDialog360"]


class FakeDialog360(WebhookSide, TemplateSide):
    """A faithful in-process fake of the 360dialog Cloud, On-Premise and Partner APIs.

    Serves Cloud routes at ``/``, On-Premise at ``/v1/...`` and the Partner API at ``/api/v2``
    on one loopback port, and its own counters at ``GET /_fake/stats`` (see `stats`), its
    recorded requests at ``GET /_fake/requests`` and `reset` at ``POST /_fake/reset``.
    Configuration attributes (``throughput``, ``pair_rate_limit``, ``gateway_limit``,
    ``engage_all``, ``record_requests``, ``record_limit``, ``list_shape``,
    ``blocklist_capacity``, ``webhooks``) are plain attributes that tests may change between
    calls.

    Webhooks: with a URL (``webhook_url``, `set_webhook`, or a client's
    ``POST /v1/configs/webhook``) every accepted send gets status webhooks as `WebhookPlan`
    says, `user_writes` posts inbound messages, `delivery` remembers what was decided and
    `webhooks_idle` waits for the POSTs to end. Without one the send path does no extra work.

    Templates: `add_template` registers approved ones with their variables, and from then on a
    template send is refused as WhatsApp would (132001, 132000, 132012, 132015, 132016);
    `set_template_status` pauses or disables one. Before any is added, any template is taken.

    Args:
        api_keys: Valid ``D360-API-KEY`` values, one channel each. None accepts any
            non-empty key, each distinct key being its own channel.
        partner_id: The Partner API partner id.
        partner_api_key: Accepted ``X-API-Key`` for the Partner API.
        partner_token: Accepted ``Authorization: Bearer`` token; None disables bearer auth.
        throughput: Message sends per second per channel (burst = rate); None or 0 = off.
        pair_rate_limit: Minimum seconds between two sends to one user per channel.
        gateway_limit: ``(requests, seconds)`` per API key across all routes.
        engage_all: Treat every user as inside the 24h customer-service window.
        record_requests: Keep `RecordedRequest` entries in ``requests``.
        record_limit: Keep at most this many (the oldest are dropped; 0 keeps none); None =
            no limit. Counters keep counting either way.
        list_shape: ``GET /block_users`` item shape, "360dialog" or "meta".
        latency: Seconds every request waits before it is handled (a slow network/server).
        host: Interface to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        clock: Monotonic clock used by every rate limiter.
        webhook_url: Default webhook of every channel (loopback only: this is a test server).
        webhook_headers: Headers sent with every POST to ``webhook_url``.
        webhook_secret: Sign every webhook body: ``x-360dialog-signature`` = hex HMAC-SHA256.
        webhooks: How statuses are decided, delayed, batched and redelivered.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        partner_id: str = "examplePA",
        partner_api_key: str = "partner-key",
        partner_token: str | None = None,
        throughput: float | None = 80.0,
        pair_rate_limit: float | None = None,
        gateway_limit: tuple[int, float] | None = None,
        engage_all: bool = False,
        record_requests: bool = True,
        record_limit: int | None = None,
        list_shape: Literal["360dialog", "meta"] = "360dialog",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
        webhook_secret: str | bytes | None = None,
        webhooks: WebhookPlan | None = None,
    ) -> None:
        self.partner_id = partner_id
        self._partner_api_key = partner_api_key
        self._partner_token = partner_token
        self.throughput = throughput
        self.pair_rate_limit = pair_rate_limit
        self.gateway_limit = gateway_limit
        self.engage_all = engage_all
        self.record_requests = record_requests
        self.record_limit = record_limit
        self.list_shape: Literal["360dialog", "meta"] = list_shape
        self.latency = latency
        self.blocklist_capacity = 64_000
        self.clock = clock
        self._host = host
        self._port = port
        self._channels = Channels(api_keys)
        self._init_webhooks(webhook_url, webhook_headers, webhook_secret, webhooks)
        self._init_templates()
        self._faults = Faults()
        self._stats = Stats()
        # The stats' own objects, cleared in place by reset(): recorded requests, oldest first,
        # and accepted sends per recipient wa_id.
        self.requests: list[RecordedRequest] = self._stats.requests
        self.sends: Counter[str] = self._stats.sends
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._serial = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeDialog360 is already started")
        app = web.Application(middlewares=[self._middleware])
        add_routes(app, self)
        add_webhook_config_routes(app, self)
        add_control_routes(app, self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self._runner = runner
        self._url = f"http://{shown}:{port}"
        self._emitter.start()

    async def close(self) -> None:
        """Stop serving, cancel pending webhooks and drop open connections; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await self._emitter.close()
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (Cloud at ``/``, On-Premise at ``/v1``)."""
        if self._url is None:
            raise RuntimeError("FakeDialog360 is not started")
        return self._url

    @property
    def partner_url(self) -> str:
        """Partner API base URL (``url + "/api/v2"``)."""
        return self.url + "/api/v2"

    def __repr__(self) -> str:
        return f"<FakeDialog360 url={self._url or 'not started'}>"

    # -- state ------------------------------------------------------------------------------

    def add_partner_channel(self, channel_id: str, api_key: str | None = None) -> None:
        """Expose a channel via the Partner API; with ``api_key`` it shares that key's state."""
        self._channels.add_partner(channel_id, api_key)

    def blocklist(self, api_key: str) -> list[str]:
        """Return the wa_ids currently blocked by the channel of ``api_key``."""
        channel = self._channels.for_key(api_key, create=False)
        return [] if channel is None else list(channel.blocked)

    def partner_blocklist(self, channel_id: str) -> list[str]:
        """Return the wa_ids currently blocked by a partner channel."""
        channel = self._channels.partner(channel_id)
        return [] if channel is None else list(channel.blocked)

    # -- faults -----------------------------------------------------------------------------

    def script(self, method: str, path: str, *responses: FakeResponse) -> None:
        """Answer the next ``len(responses)`` requests to a route with these, in order.

        ``path`` is an exact path (``"/messages"``) or a pattern whose ``{name}`` parts match
        one segment (``"/v1/contacts/{phone}/block"``). ``method`` ``"*"`` matches any method.
        Scripted answers bypass auth and limits unless ``process=True``.
        """
        self._faults.script(method, path, responses)

    def fail_recipient(
        self,
        number: str,
        *,
        code: int = 131026,
        status: int = 400,
        message: str = "Message undeliverable",
        times: int | None = None,
    ) -> None:
        """Make sends to ``number`` fail with an API error (``times`` None = always)."""
        self._faults.fail(digits(number), Failure(code, status, message, times))

    def _take_failure(self, wa_id: str) -> Failure | None:
        """Consume one injected failure for ``wa_id``, if any."""
        return self._faults.take_failure(wa_id)

    # -- observability ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._stats.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests handled at once since the start (or the last `reset`)."""
        return self._stats.max_in_flight

    def duplicates(self) -> dict[str, int]:
        """Recipients that were sent more than one accepted message, with their counts."""
        return self._stats.duplicates()

    def stats(self, *, by_recipient: bool = False) -> dict[str, Any]:
        """Every counter, as ``GET /_fake/stats`` serves it (JSON-ready; shows no key).

        ``requests`` (``total``, ``by_route`` as ``"METHOD /pattern"``, ``unmatched``),
        ``responses`` (``by_status``, ``closed`` by a script), ``sends`` (``total``,
        ``recipients``, ``duplicates`` as wa_id -> count, ``duplicate_sends`` = sends beyond
        the first per recipient, and ``by_recipient`` when asked), ``throttled`` (the fake's
        own limits: ``by_reason`` ``"130429"``, ``"131056"``, ``"gateway"``), ``in_flight``,
        ``max_in_flight``, ``recorded`` (``enabled``, ``kept``, ``limit``, ``dropped``),
        ``channels`` and ``webhooks`` (``posts`` = POST attempts, ``delivered`` = answered 200,
        ``redeliveries``, ``failed_attempts``, ``timeouts``, ``gave_up`` = bodies abandoned
        after every attempt failed, ``statuses`` and ``messages`` received, ``duplicates``,
        ``early`` = first statuses posted before the send's answer, ``not_loopback`` = sends
        whose webhook URL the fake will not call, ``pending``). Requests to ``/_fake/`` are
        not counted.
        """
        snapshot = self._stats.snapshot(
            recording=self.record_requests, limit=self.record_limit, by_recipient=by_recipient
        )
        snapshot["channels"] = sum(1 for _ in self._channels)
        snapshot["webhooks"] = self._emitter.counters.snapshot(self._emitter.pending)
        return snapshot

    def reset(self, *, state: bool = False) -> None:
        """Clear recorded requests, counters, scripts, injected failures, fates, `delivery`
        and limiter history (webhooks already scheduled still go out).

        Configuration (webhooks included) is kept. With ``state=True`` blocklists and
        engagement are cleared too.
        """
        self._stats.clear()
        self._faults.clear()
        self._emitter.counters.clear()
        self._emitter.fates.clear()
        self._emitter.log.clear()
        for channel in self._channels:
            channel.reset_limits()
        if state:
            self._channels.clear()
            self._engaged_everywhere.clear()

    def _next_serial(self) -> int:
        """A process-unique counter for message ids."""
        self._serial += 1
        return self._serial

    def _count_send(self, wa_id: str) -> None:
        """Record an accepted message send."""
        self._stats.sends[wa_id] += 1

    def _count_throttle(self, reason: str) -> None:
        """Record a send or request refused by one of the fake's own limits."""
        self._stats.throttled[reason] += 1

    # -- auth helpers used by the routes ----------------------------------------------------

    def _channel_for_key(self, api_key: str) -> Channel | None:
        """The channel a ``D360-API-KEY`` authenticates as, or None."""
        return self._channels.for_key(api_key)

    def _partner_authorized(self, request: web.Request) -> bool:
        """Whether the request carries valid Partner API credentials."""
        if request.headers.get("X-API-Key") == self._partner_api_key:
            return True
        token = self._partner_token
        return token is not None and request.headers.get("Authorization") == f"Bearer {token}"

    def _partner_channel(self, channel_id: str) -> Channel | None:
        """The channel behind a partner channel id."""
        return self._channels.partner(channel_id)

    # -- request pipeline -------------------------------------------------------------------

    def _label(self, request: web.Request) -> str | None:
        if request.path.startswith("/api/v2/"):
            channel_id = request.match_info.get("channel_id")
            channel = None if channel_id is None else self._channels.partner(channel_id)
        else:
            key = request.headers.get("D360-API-KEY", "")
            if not key:  # the Meta-style route: a bearer token stands for the key
                scheme, _, token = request.headers.get("Authorization", "").partition(" ")
                key = token.strip() if scheme.lower() == "bearer" else ""
            channel = self._channels.for_key(key)
        return None if channel is None else channel.label

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            response: web.StreamResponse = await handler(request)
            return response
        stats = self._stats
        stats.arrived(request.match_info.route)
        try:
            response = await self._handle(request, handler)
        except web.HTTPException as exc:  # aiohttp's own 404 and 405
            stats.statuses[exc.status] += 1
            raise
        finally:
            stats.left()
        return response

    async def _handle(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = INVALID_JSON
        REQUEST_BODY.set(parsed)
        if self.record_requests:
            json_body = None if parsed is INVALID_JSON else parsed
            self._stats.record(request, json_body, self._label(request), self.record_limit)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        scripted = self._faults.take_script(request.method, request.path)
        if scripted is None:
            response: web.StreamResponse = await handler(request)
        else:
            if scripted.process:
                await handler(request)
            if scripted.delay > 0:
                await asyncio.sleep(scripted.delay)
            response = answer(request, scripted)
            if scripted.close:
                self._stats.closed += 1
                return response
        self._stats.statuses[response.status] += 1
        return response
