"""What every client shares: options, lifecycle and the path to the transport."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, NoReturn, Self

import aiohttp

from ._converter import structure_response, unstructure
from ._middleware import RetryMiddleware
from ._models import ContactsMessage, LocationMessage, Message
from ._ratelimit import RateLimiter
from ._results import SentMessage
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._transport import Transport
from ._wire import SendResponse
from .errors import ValidationError

__all__ = ["BaseClient", "secret"]

_NO_RETRY = RetryPolicy(max_attempts=1)


def secret(value: str | Secret | None, field: str) -> Secret:
    """Wrap a key at once so that it never sits in a plain attribute."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    return Secret(value)


class BaseClient:
    """Lifecycle shared by the three clients. Safe to share across tasks of one event loop."""

    __slots__ = ("_transport", "rate_limit", "retry", "retry_budget")

    def __init__(
        self,
        *,
        base_url: str,
        auth_headers: Mapping[str, str],
        retry: RetryPolicy | None,
        rate_limit: float | RateLimiter | None,
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy or None, got {retry!r}")
        if rate_limit is not None and not isinstance(rate_limit, RateLimiter):
            rate_limit = RateLimiter(rate_limit)
        self.retry = retry
        self.rate_limit = rate_limit
        self.retry_budget = RetryBudget()
        # retry=None still runs the middleware, with one attempt, for its per-attempt logging.
        policy = retry if retry is not None else _NO_RETRY
        self._transport = Transport(
            base_url=base_url,
            headers=auth_headers,
            timeout=timeout,
            session=session,
            send_middlewares=(
                RetryMiddleware(
                    policy, idempotent=False, budget=self.retry_budget, limiter=rate_limit
                ),
            ),
            call_middlewares=(RetryMiddleware(policy, idempotent=True, budget=self.retry_budget),),
        )

    @property
    def base_url(self) -> str:
        """The API root every path is appended to."""
        return self._transport.base_url

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        middlewares: tuple[aiohttp.ClientMiddlewareType, ...] | None = None,
    ) -> tuple[int, Any]:
        return await self._transport.request(
            method, path, body=body, params=params, idempotent=idempotent, middlewares=middlewares
        )

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
        return structure_response(
            data, SendResponse, status=status, request=f"POST {path}"
        ).result()

    _messages_path = "/messages"

    def _message_body(self, message: Message) -> dict[str, Any]:
        return unstructure(message)

    async def close(self) -> None:
        """Release the connections (an external ``session=`` is left open for its owner)."""
        await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def __reduce__(self) -> NoReturn:
        # A pickled client would carry its auth header in clear text.
        raise TypeError(f"{type(self).__name__} cannot be pickled: it holds an API key")
