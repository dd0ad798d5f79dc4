"""What every client shares: options, lifecycle and the path to the transport."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, NoReturn, Self

import aiohttp

from . import _channels
from . import _validation as v
from ._attempt import DEFAULT_MAX_RESPONSE_BYTES
from ._middleware import AttemptReport, RetryMiddleware
from ._models import Contact, ContactsMessage, Location, LocationMessage, Message, check_message
from ._ratelimit import Limiter, RateLimiter
from ._results import SentMessage
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._templates import Template, TemplateMessage, TextMessage
from ._transport import Transport
from ._webhook_config import WEBHOOK_PATH, WebhookConfig, confirmed, webhook_body, webhook_config
from ._wire import sent_message
from .errors import ValidationError

__all__ = [
    "CHANNEL",
    "MAX_CALLBACK_DATA_BYTES",
    "AsyncClosing",
    "BaseClient",
    "MessagingClient",
    "RateLimit",
    "check_callback_data",
    "secret",
]

CHANNEL: Literal["channel"] = "channel"
"""``rate_limit=CHANNEL`` (the default): the limiter every client of the key shares."""
RateLimit = float | Limiter | Literal["channel"] | None
"""What ``rate_limit=`` takes: see :class:`MessagingClient`."""

MAX_CALLBACK_DATA_BYTES = 256  # see check_callback_data()
_NO_RETRY = RetryPolicy(max_attempts=1)
_LIMITER_METHODS = ("acquire", "slow_down", "on_success")


def secret(value: str | Secret | None, field: str) -> Secret:
    """Wrap a key at once so that it never sits in a plain attribute."""
    if isinstance(value, Secret):
        value = value.reveal()
    rule = v.token_rule(value)
    if rule is None and isinstance(value, str):
        return Secret(value)
    del value  # no frame of the traceback may hold the key (error trackers record locals)
    raise ValidationError(field, str(rule))


def _limiter(rate_limit: object, key: Secret) -> tuple[Limiter | None, float | None]:
    """The client's limiter, and the rate to give it once the client is built (so that a
    constructor that fails leaves the channel's limit as it was)."""
    if rate_limit is None:
        return None, None
    if isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
        rate = v.finite(rate_limit, "rate_limit")
        if not rate > 0:
            raise ValidationError(
                "rate_limit",
                f"must be a finite number of messages per second > 0, got {rate_limit!r}",
            )
        return _channels.channel_limits.limiter(key), rate
    if rate_limit == CHANNEL and isinstance(rate_limit, str):
        return _channels.channel_limits.limiter(key), None
    if all(callable(getattr(rate_limit, name, None)) for name in _LIMITER_METHODS):
        return rate_limit, None  # type: ignore[return-value]
    raise ValidationError(
        "rate_limit",
        f"must be messages per second, a Limiter, 'channel' or None, got {v.shown(rate_limit)}",
    )


def check_callback_data(value: object) -> str:
    """A ``biz_opaque_callback_data``: a string of 1 to 256 bytes UTF-8.

    Meta documents 512 characters, older text 256 bytes: the stricter bound is taken
    (../shared/docs/webhooks-and-statuses.md §3).
    """
    text = v.text(value, "callback_data")
    size = len(text) if text.isascii() else len(text.encode())
    if not 0 < size <= MAX_CALLBACK_DATA_BYTES:
        raise ValidationError(
            "callback_data",
            f"must be 1 to {MAX_CALLBACK_DATA_BYTES} bytes in UTF-8, got {size}",
        )
    return text


class AsyncClosing:
    """``async with`` for anything that has ``async close()``."""

    __slots__ = ()

    async def close(self) -> None:
        """Release what this object holds."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class BaseClient(AsyncClosing):
    """Lifecycle shared by the three clients. Safe to share across tasks of one event loop."""

    __slots__ = ("_policy", "_request", "_transport", "rate_limit", "retry", "retry_budget")

    def __init__(
        self,
        *,
        base_url: str,
        auth_headers: Mapping[str, str | Secret],
        retry: RetryPolicy | None,
        limiter: Limiter | None,
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy or None, got {retry!r}")
        self.retry = retry
        self.rate_limit = limiter
        self.retry_budget = RetryBudget()
        # retry=None still runs the middleware, with one attempt, for its per-attempt logging.
        self._policy = policy = retry if retry is not None else _NO_RETRY
        self._transport = transport = Transport(
            base_url=base_url,
            headers=auth_headers,
            timeout=timeout,
            session=session,
            max_response_bytes=max_response_bytes,
            send_retry=RetryMiddleware(
                policy, idempotent=False, budget=self.retry_budget, limiter=self.rate_limit
            ),
            call_retry=RetryMiddleware(policy, idempotent=True, budget=self.retry_budget),
        )
        # The transport's method itself, not a wrapper: every await resumption walks the
        # chain of coroutine frames, so one frame fewer is measurable on the send path.
        self._request = transport.request

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._transport.base_url

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran; a closed client refuses every call."""
        return self._transport.closed

    async def close(self) -> None:
        """Release the connections (an external ``session=`` is left open for its owner).

        Calls still in flight end with an SDK error; later calls raise TransportError.
        """
        await self._transport.close()

    def __repr__(self) -> str:
        # Safe on a half-built client too: error trackers repr the locals of failed frames.
        transport = getattr(self, "_transport", None)
        shown = "?" if transport is None else repr(transport.base_url)
        return f"{type(self).__name__}(base_url={shown})"

    def __reduce__(self) -> NoReturn:
        # A pickled client would carry its auth header in clear text.
        raise TypeError(f"{type(self).__name__} cannot be pickled: it holds an API key")


class MessagingClient(BaseClient):
    """The messaging API of one channel: what the Cloud and On-Premise clients share.

    Args:
        api_key: the channel's ``D360-API-KEY``. Never shown in reprs, logs or errors.
        base_url: API root (default: the client's 360dialog host); ``http://`` is accepted
            for loopback hosts only.
        retry: retry policy, or None for no retries.
        rate_limit: the channel's send pacing. The limit belongs to the channel (the key),
            not to a client: by default (``"channel"``) every client of the key in this
            process, Cloud or On-Premise, shares one adaptive limiter at 80 msg/s that slows
            down by x0.7 on throughput errors (130429) and recovers. A number sets that
            shared limiter's rate (the channel's limit is this; the latest number given for a
            key wins, for every client of it). A Limiter (e.g. the distributed extra's) is
            used as given, by this client only. None sends unpaced.
        timeout: seconds one attempt may take, connect, headers and body together (or an
            ``aiohttp.ClientTimeout``, whose ``total`` is then that bound).
        session: an ``aiohttp.ClientSession`` to use; the client will not close it.
        max_response_bytes: the largest response body read; a larger one is an error.
    """

    __slots__ = ()
    DEFAULT_URL = ""
    _messages_path = "/messages"

    def __init__(
        self,
        api_key: str | Secret,
        *,
        base_url: str | None = None,
        retry: RetryPolicy | None = RetryPolicy(),
        rate_limit: RateLimit = CHANNEL,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        try:
            key = secret(api_key, "api_key")
        finally:
            del api_key  # no frame of a failed constructor may hold the key (error trackers)
        limiter, rate = _limiter(rate_limit, key)
        super().__init__(
            base_url=self.DEFAULT_URL if base_url is None else base_url,
            auth_headers={"D360-API-KEY": key},
            retry=retry,
            limiter=limiter,
            timeout=timeout,
            session=session,
            max_response_bytes=max_response_bytes,
        )
        if rate is not None:
            assert isinstance(limiter, RateLimiter)
            limiter.set_rate(rate)

    async def send(self, message: Message, *, callback_data: str | None = None) -> SentMessage:
        """Send a location, contacts, text or template message.

        Args:
            message: a LocationMessage, ContactsMessage, TextMessage or TemplateMessage.
            callback_data: Cloud API only: up to 256 bytes (UTF-8) that WhatsApp echoes in
                this message's status webhooks (``StatusUpdate.callback_data``), e.g. to match
                a status to a send whose answer was lost. Not an idempotency key.

        Raises:
            ValidationError: ``message`` is none of those, ``callback_data`` is not allowed
                (too long, or on On-Premise), or an On-Premise template has no namespace.
            APIError: the API refused it (see the subclasses in ``dialog360_async.errors``).
            DeliveryUnknownError: it may or may not have been delivered.
        """
        return await self._deliver(message, callback_data=callback_data)

    async def send_location(
        self, to: str, location: Location, *, callback_data: str | None = None
    ) -> SentMessage:
        """Send a location to ``to`` (a phone number or wa_id); ``callback_data`` as in
        :meth:`send`."""
        return await self._deliver(
            LocationMessage(to=to, location=location), callback_data=callback_data
        )

    async def send_contacts(
        self,
        to: str,
        contacts: Contact | Iterable[Contact],
        *,
        callback_data: str | None = None,
    ) -> SentMessage:
        """Send one or more (up to 257) contact cards to ``to``; ``callback_data`` as in
        :meth:`send`."""
        cards = (contacts,) if isinstance(contacts, Contact) else tuple(contacts)
        return await self._deliver(
            ContactsMessage(to=to, contacts=cards), callback_data=callback_data
        )

    async def send_text(
        self,
        to: str,
        body: str,
        *,
        preview_url: bool = False,
        callback_data: str | None = None,
    ) -> SentMessage:
        """Send a text of 1 to 4096 characters to ``to`` (inside the user's 24-hour window);
        ``preview_url`` previews the first URL in it; ``callback_data`` as in :meth:`send`."""
        return await self._deliver(
            TextMessage(to=to, body=body, preview_url=preview_url), callback_data=callback_data
        )

    async def send_template(
        self, to: str, template: Template, *, callback_data: str | None = None
    ) -> SentMessage:
        """Send an approved template to ``to`` (allowed outside the 24-hour window);
        ``callback_data`` as in :meth:`send`. On-Premise needs ``template.namespace``."""
        return await self._deliver(
            TemplateMessage(to=to, template=template), callback_data=callback_data
        )

    async def _deliver(
        self,
        message: Message,
        retry: RetryMiddleware | None = None,
        *,
        callback_data: str | None = None,
        report: AttemptReport | None = None,
    ) -> SentMessage:
        """Send one message; the bulk sender passes its channel's RetryMiddleware to pace and
        watch it, and a report of the attempts. An answer without a ``messages[0].id`` is no
        success (DeliveryUnknownError)."""
        check_message(message)
        _, sent = await self._request(
            "POST",
            self._messages_path,
            body=self._message_body(message, callback_data),
            idempotent=False,
            retry=retry,
            report=report,
            read=sent_message,
        )
        return sent  # type: ignore[no-any-return]

    def _message_body(self, message: Message, callback_data: str | None) -> dict[str, Any]:
        """The JSON body of ``message`` for this API (checks ``callback_data`` first)."""
        raise NotImplementedError

    async def set_webhook(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> WebhookConfig:
        """Set where 360dialog POSTs this channel's notifications (statuses, inbound messages).

        Args:
            url: an ``https://`` URL on the default port with no ``_`` in its host (360dialog's
                rules; ``http://`` and a port are accepted for loopback hosts only).
            headers: headers 360dialog sends with every notification, e.g.
                ``{"Authorization": secret}`` for the receiver to check. Names are HTTP header
                names without ``_``; values have no control characters.

        Returns:
            The webhook as the API confirms it (what was sent, where the answer omits it).

        Raises:
            ValidationError: ``url`` or ``headers`` break the rules above (before any I/O).
            APIError: the API refused it.
        """
        body = webhook_body(url, headers)
        _, data = await self._request("POST", WEBHOOK_PATH, body=body)
        return confirmed(data, body)

    async def get_webhook(self) -> WebhookConfig | None:
        """The channel's webhook, or None when none is set."""
        status, data = await self._request("GET", WEBHOOK_PATH)
        return webhook_config(data, status=status, request=f"GET {WEBHOOK_PATH}")
