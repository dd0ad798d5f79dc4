"""What every client shares: options, lifecycle and the path to the transport."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn, Self

import aiohttp

from . import _validation as v
from ._attempt import DEFAULT_MAX_RESPONSE_BYTES
from ._converter import unstructure
from ._middleware import RetryMiddleware
from ._models import Contact, ContactsMessage, Location, LocationMessage, Message
from ._ratelimit import Limiter, RateLimiter
from ._results import SentMessage
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._transport import Transport
from ._wire import sent_message
from .errors import ValidationError

__all__ = ["AsyncClosing", "BaseClient", "MessagingClient", "secret"]

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


def _limiter(rate_limit: object) -> Limiter | None:
    if rate_limit is None:
        return None
    if isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
        if not v.finite(rate_limit, "rate_limit") > 0:
            raise ValidationError(
                "rate_limit",
                f"must be a finite number of messages per second > 0, got {rate_limit!r}",
            )
        return RateLimiter(rate_limit)
    if all(callable(getattr(rate_limit, name, None)) for name in _LIMITER_METHODS):
        return rate_limit  # type: ignore[return-value]
    raise ValidationError(
        "rate_limit", f"must be messages per second, a Limiter or None, got {rate_limit!r}"
    )


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
        rate_limit: float | Limiter | None,
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy or None, got {retry!r}")
        self.retry = retry
        self.rate_limit = _limiter(rate_limit)
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
        rate_limit: messages per second for this channel (or a shared Limiter), or None.
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
        rate_limit: float | Limiter | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        try:
            key = secret(api_key, "api_key")
        finally:
            del api_key  # no frame of a failed constructor may hold the key (error trackers)
        super().__init__(
            base_url=self.DEFAULT_URL if base_url is None else base_url,
            auth_headers={"D360-API-KEY": key},
            retry=retry,
            rate_limit=rate_limit,
            timeout=timeout,
            session=session,
            max_response_bytes=max_response_bytes,
        )

    async def send(self, message: Message) -> SentMessage:
        """Send a location or contacts message.

        Raises:
            ValidationError: ``message`` is not a LocationMessage or ContactsMessage.
            APIError: the API refused it (see the subclasses in ``dialog360_async.errors``).
            DeliveryUnknownError: it may or may not have been delivered.
        """
        return await self._deliver(message)

    async def send_location(self, to: str, location: Location) -> SentMessage:
        """Send a location to ``to`` (a phone number or wa_id)."""
        return await self._deliver(LocationMessage(to=to, location=location))

    async def send_contacts(self, to: str, contacts: Contact | Iterable[Contact]) -> SentMessage:
        """Send one or more (up to 257) contact cards to ``to``."""
        cards = (contacts,) if isinstance(contacts, Contact) else tuple(contacts)
        return await self._deliver(ContactsMessage(to=to, contacts=cards))

    async def _deliver(
        self, message: Message, middlewares: Sequence[RetryMiddleware] | None = None
    ) -> SentMessage:
        """Send one message; the bulk sender passes its own RetryMiddleware to pace and watch
        it. An answer without a ``messages[0].id`` is no success (DeliveryUnknownError)."""
        if not isinstance(message, LocationMessage | ContactsMessage):
            raise ValidationError(
                "message", f"must be a LocationMessage or ContactsMessage, got {message!r}"
            )
        _, sent = await self._request(
            "POST",
            self._messages_path,
            body=self._message_body(message),
            idempotent=False,
            retry=middlewares[0] if middlewares else None,
            read=sent_message,
        )
        return sent  # type: ignore[no-any-return]

    def _message_body(self, message: Message) -> dict[str, Any]:
        return unstructure(message)
