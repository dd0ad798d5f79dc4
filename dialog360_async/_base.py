"""What every client shares: options, lifecycle and the path to the transport."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, NoReturn, Self

import aiohttp

from ._converter import structure_response, unstructure
from ._middleware import RetryMiddleware
from ._models import Contact, ContactsMessage, Location, LocationMessage, Message
from ._ratelimit import Limiter, RateLimiter
from ._results import SentMessage
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._transport import Transport
from ._wire import SendResponse, sent_message
from .errors import ValidationError

__all__ = ["AsyncClosing", "BaseClient", "MessagingClient", "secret"]

_NO_RETRY = RetryPolicy(max_attempts=1)


def secret(value: str | Secret | None, field: str) -> Secret:
    """Wrap a key at once so that it never sits in a plain attribute."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    return Secret(value)


def _limiter(rate_limit: object) -> Limiter | None:
    if rate_limit is None:
        return None
    if isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
        return RateLimiter(rate_limit)
    if callable(getattr(rate_limit, "acquire", None)):
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
        auth_headers: Mapping[str, str],
        retry: RetryPolicy | None,
        rate_limit: float | Limiter | None,
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
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
            send_middlewares=(
                RetryMiddleware(
                    policy, idempotent=False, budget=self.retry_budget, limiter=self.rate_limit
                ),
            ),
            call_middlewares=(RetryMiddleware(policy, idempotent=True, budget=self.retry_budget),),
        )
        # The transport's method itself, not a wrapper: every await resumption walks the
        # chain of coroutine frames, so one frame fewer is measurable on the send path.
        self._request = transport.request

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._transport.base_url

    async def close(self) -> None:
        """Release the connections (an external ``session=`` is left open for its owner)."""
        await self._transport.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

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
        timeout: seconds for one attempt (connect and read), or an ``aiohttp.ClientTimeout``.
        session: an ``aiohttp.ClientSession`` to use; the client will not close it.
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
    ) -> None:
        key = secret(api_key, "api_key")
        super().__init__(
            base_url=self.DEFAULT_URL if base_url is None else base_url,
            auth_headers={"D360-API-KEY": key.reveal()},
            retry=retry,
            rate_limit=rate_limit,
            timeout=timeout,
            session=session,
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
        self, message: Message, middlewares: tuple[aiohttp.ClientMiddlewareType, ...] | None = None
    ) -> SentMessage:
        """Send one message; ``middlewares`` lets the bulk sender pace and watch it."""
        if not isinstance(message, LocationMessage | ContactsMessage):
            raise ValidationError(
                "message", f"must be a LocationMessage or ContactsMessage, got {message!r}"
            )
        path = self._messages_path
        status, data = await self._request(
            "POST",
            path,
            body=self._message_body(message),
            idempotent=False,
            middlewares=middlewares,
        )
        sent = sent_message(data)
        if sent is not None:
            return sent
        return structure_response(
            data, SendResponse, status=status, request=f"POST {path}"
        ).result()

    def _message_body(self, message: Message) -> dict[str, Any]:
        return unstructure(message)
