"""Building blocks shared by the route handlers: auth, limits, block bookkeeping."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from aiohttp import web

from ._bodies import (
    BodyError,
    gateway_error,
    meta_body_error,
    meta_error,
    on_prem_body_error,
    on_prem_error,
    phone_wa_id,
    user_error,
    validate_message,
)
from ._faults import Failure
from ._state import Channel

if TYPE_CHECKING:
    from ._webhook_config import Target

# Set by the middleware for the task handling one request (request storage keys differ
# across the aiohttp versions we support).
REQUEST_BODY: ContextVar[Any] = ContextVar("dialog360_fake_body", default=None)
INVALID_JSON: Final = object()

_CURSOR = re.compile(r"^offset:(\d{1,9})$")
NOT_ENGAGED = "Invalid Request. This contact has not engaged with you in the last 24 hrs."
BAD_WA_ID = (
    "Provided WhatsApp ID is not valid. Please provide a valid WhatsApp ID or a phone number "
    "with a country code"
)
_THROUGHPUT = "Cloud API message throughput has been reached."
_PAIR = (
    "Message failed to send because there were too many messages sent from this phone number "
    "to the same phone number in a short period of time."
)

Handler = Callable[[Any, web.Request], Awaitable[web.StreamResponse]]


class Server(Protocol):
    """What the handlers read and count on the fake (`FakeDialog360` is the implementation).

    Configuration is read on every request, so tests may change it between calls.
    """

    partner_id: str
    throughput: float | None
    pair_rate_limit: float | None
    gateway_limit: tuple[int, float] | None
    list_shape: Literal["360dialog", "meta"]
    blocklist_capacity: int
    clock: Callable[[], float]

    def _channel_for_key(self, api_key: str) -> Channel | None: ...
    def _is_engaged(self, channel: Channel, wa_id: str) -> bool: ...
    def _partner_authorized(self, request: web.Request) -> bool: ...
    def _partner_channel(self, channel_id: str) -> Channel | None: ...
    def _take_failure(self, wa_id: str) -> Failure | None: ...
    def _template_refusal(self, body: Mapping[str, Any]) -> tuple[int, str, str] | None: ...
    def _next_serial(self) -> int: ...
    def _count_send(self, wa_id: str) -> None: ...
    def _count_throttle(self, reason: str) -> None: ...
    def _webhook_target(self, channel: Channel) -> Target | None: ...
    def _accepted(
        self, channel: Channel, wa_id: str, message_id: str, api: Literal["cloud", "on_premise"]
    ) -> Awaitable[object] | None: ...


class Reply(Exception):
    """Short-circuits a handler with a finished (error) response."""

    def __init__(self, body: Any, status: int) -> None:
        super().__init__(status)
        self.response = web.json_response(body, status=status)


def guarded(handler: Handler) -> Handler:
    """Turn a `Reply` raised anywhere in ``handler`` into its response."""

    @functools.wraps(handler)
    async def run(api: Any, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(api, request)
        except Reply as reply:
            return reply.response

    return run


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> int | None:
    try:
        match = _CURSOR.match(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        return None
    return None if match is None else int(match.group(1))


def int_param(query: Mapping[str, str], name: str, default: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isdigit() else None


def ref(user: str, wa_id: str) -> dict[str, str]:
    return {"input": user, "wa_id": wa_id}


class BaseApi:
    """Shared steps of the handlers, bound to one `Server` (config read per request)."""

    def __init__(self, fake: Server) -> None:
        self.fake = fake

    # -- shared steps -------------------------------------------------------------------------

    def d360(self, request: web.Request, key: str | None = None) -> Channel:
        """The channel of the request's ``D360-API-KEY`` (or of ``key``), gateway limit applied."""
        if key is None:
            key = request.headers.get("D360-API-KEY", "")
        channel = self.fake._channel_for_key(key)
        if channel is None:
            raise Reply(gateway_error(401, "Invalid api key"), 401)
        limit = self.fake.gateway_limit
        if limit is not None and not channel.gateway.hit(limit[0], limit[1], self.fake.clock()):
            self.fake._count_throttle("gateway")
            count, seconds = limit
            noun = "request" if count == 1 else "requests"
            message = (
                f"You have exceeded the limit of {count} {noun} every {seconds:g} seconds. "
                "Try again later."
            )
            raise Reply(gateway_error(400, message), 400)
        return channel

    def bearer(self, request: web.Request) -> str:
        """The token of a Meta-style ``Authorization: Bearer <token>``; it stands for a D360 key.

        A missing or unknown token is answered as Meta does: 401 with OAuth error 190.
        """
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or self.fake._channel_for_key(token) is None:
            details = "Invalid OAuth access token - Cannot parse access token"
            raise Reply(meta_error(190, details, details), 401)
        return token

    def block(self, channel: Channel, users: list[str]) -> tuple[list[Any], list[Any]]:
        added: list[Any] = []
        failed: list[Any] = []
        for user in users:
            wa_id = phone_wa_id(user)
            if wa_id is None:
                error = user_error(100, "Invalid parameter", "Not a phone number or WhatsApp ID.")
                failed.append({"input": user, "errors": [error]})
            elif not self.fake._is_engaged(channel, wa_id):
                error = user_error(131047, "Re-engagement required", NOT_ENGAGED)
                failed.append({**ref(user, wa_id), "errors": [error]})
            elif wa_id not in channel.blocked and len(channel.blocked) >= (
                self.fake.blocklist_capacity
            ):
                error = user_error(139101, "Blocklist limit reached", "The blocklist is full.")
                failed.append({**ref(user, wa_id), "errors": [error]})
            else:
                channel.blocked.setdefault(wa_id, user)
                added.append(ref(user, wa_id))
        return added, failed

    @staticmethod
    def unblock(channel: Channel, users: list[str]) -> tuple[list[Any], list[Any]]:
        removed: list[Any] = []
        failed: list[Any] = []
        for user in users:
            wa_id = phone_wa_id(user)
            if wa_id is None:
                error = user_error(100, "Invalid parameter", "Not a phone number or WhatsApp ID.")
                failed.append({"input": user, "errors": [error]})
            else:
                channel.blocked.pop(wa_id, None)
                removed.append(ref(user, wa_id))
        return removed, failed

    def send(
        self, request: web.Request, *, cloud: bool, key: str | None = None
    ) -> tuple[Channel, str, str]:
        """Validate and admit one message send: ``(channel, to, wa_id)`` or a `Reply`."""
        channel = self.d360(request, key)
        try:
            to, wa_id = validate_message(REQUEST_BODY.get(), cloud=cloud)
        except BodyError as err:
            raise Reply(meta_body_error(err) if cloud else on_prem_body_error(err), 400) from None
        refused = self.fake._template_refusal(REQUEST_BODY.get())
        if refused is not None:
            code, message, details = refused
            body = meta_error(code, message, details) if cloud else on_prem_error(*refused)
            raise Reply(body, 400)
        failure = self.fake._take_failure(wa_id)
        if failure is not None:
            body = (
                meta_error(failure.code, failure.message, failure.message)
                if cloud
                else on_prem_error(failure.code, failure.message, failure.message)
            )
            raise Reply(body, failure.status)
        now = self.fake.clock()
        pair = self.fake.pair_rate_limit
        if pair:
            last = channel.last_send.get(wa_id)
            if last is not None and now - last < pair:
                self.fake._count_throttle("131056")
                message = "(Business Account, Consumer Account) pair rate limit hit"
                body = (
                    meta_error(131056, message, _PAIR)
                    if cloud
                    else on_prem_error(131056, message, _PAIR)
                )
                raise Reply(body, 400)
        rate = self.fake.throughput
        if rate and not channel.bucket.take(rate, now):
            self.fake._count_throttle("130429")
            body = (
                meta_error(130429, "Rate limit hit", _THROUGHPUT)
                if cloud
                else on_prem_error(130429, "Rate limit hit", _THROUGHPUT)
            )
            raise Reply(body, 429)
        if pair:
            channel.last_send[wa_id] = now
        self.fake._count_send(wa_id)
        return channel, to, wa_id
