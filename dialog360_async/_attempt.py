"""One attempt of a request: its bounds, what it came to, and what the last one means.

An attempt is connect, request, headers and body together, within one time bound and one size
cap. It ends as a :class:`Reply` or a :class:`Failure`: plain values that hold no aiohttp
object, so that the retry middleware can judge them and the transport raise the SDK error
(:func:`error_of`, :func:`unreadable`), both outside aiohttp's frames. A closing client ends its
calls in flight through :func:`interrupt`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from ._error_parser import parse_error
from .errors import (
    APIError,
    DeliveryUnknownError,
    Dialog360Error,
    ServerError,
    TransportError,
    ValidationError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Attempt",
    "Failure",
    "Reply",
    "aiohttp_timeout",
    "check_max_response_bytes",
    "check_timeout",
    "error_of",
    "forget",
    "interrupt",
    "interrupted",
    "unreadable",
]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_NO_TIMEOUTS = aiohttp.ClientTimeout()


def _seconds(value: object) -> bool:
    # float() first: math.isfinite(10**400) raises OverflowError instead of answering.
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:
        return False


def check_timeout(timeout: object) -> float | None:
    """Validate ``timeout`` (seconds, or an ``aiohttp.ClientTimeout``); return the seconds one
    whole attempt may take (a ClientTimeout's ``total``), None for no bound."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        for name in ("total", "connect", "sock_read", "sock_connect"):
            value = getattr(timeout, name)
            if value is not None and not _seconds(value):
                raise ValidationError(
                    f"timeout.{name}", f"must be None or a positive number, got {value!r}"
                )
        return None if timeout.total is None else float(timeout.total)
    if not _seconds(timeout):
        raise ValidationError(
            "timeout", f"must be a positive number of seconds or a ClientTimeout, got {timeout!r}"
        )
    return float(timeout)  # type: ignore[arg-type]


def check_max_response_bytes(value: object) -> int:
    """Validate the response size cap."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("max_response_bytes", f"must be an integer >= 1, got {value!r}")
    return value


def aiohttp_timeout(timeout: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """What aiohttp is told for each attempt: never a ``total`` (aiohttp's spans the whole
    request), since the attempt's own bound covers connect, headers and body; a given
    ClientTimeout's finer bounds are kept."""
    if not isinstance(timeout, aiohttp.ClientTimeout):
        return _NO_TIMEOUTS
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeout.connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


class Reply:
    """The answer to one attempt: status, headers and the body read up to the size cap.

    ``complete`` is False when the body was over the cap (``body`` then holds only a prefix).
    The retry middleware sets ``error`` (the parsed error of a >= 400 answer) and ``doubtful``
    (an earlier attempt of the same request may have been processed).
    """

    __slots__ = ("body", "complete", "doubtful", "error", "headers", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], body: bytes, complete: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.complete = complete
        self.error: APIError | None = None
        self.doubtful = False

    def __repr__(self) -> str:
        return f"Reply(status={self.status}, bytes={len(self.body)}, complete={self.complete})"


class Failure:
    """One attempt that got no answer. ``sent`` is False only when the request provably never
    left the client; ``kind`` names the cause (an exception class name) for logs; ``timeout``
    says it ran out of time (a retry after one costs the retry budget more)."""

    __slots__ = ("doubtful", "kind", "reason", "retryable", "sent", "timeout")

    def __init__(
        self, kind: str, reason: str, *, sent: bool, retryable: bool, timeout: bool = False
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.sent = sent
        self.retryable = retryable
        self.timeout = timeout
        self.doubtful = False

    def __repr__(self) -> str:
        return f"Failure({self.reason!r}, sent={self.sent}, retryable={self.retryable})"


Attempt = Callable[[float | None], Awaitable[Reply | Failure]]
"""One attempt; its argument is what is left of the call's deadline, in seconds, or None."""


# Tasks a closing client has cancelled: for them the CancelledError means "the client closed",
# which ends the call with an SDK error, not "the caller cancelled", which propagates.
_closing: set[asyncio.Task[Any]] = set()


def interrupt(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel the calls of a closing client (they end with an SDK error)."""
    me = asyncio.current_task()
    for task in tuple(tasks):
        if task is not me and task not in _closing:
            _closing.add(task)
            task.cancel()


def interrupted() -> bool:
    """Whether the CancelledError being handled came from :func:`interrupt`; if so it is
    absorbed (unless the caller cancelled too) and the call goes on to report the close."""
    task = asyncio.current_task()
    if task is None or task not in _closing:
        return False
    _closing.discard(task)
    return task.uncancel() == 0


def forget(task: asyncio.Task[Any]) -> None:
    """Once a call is over: if a close cancelled it but the cancellation never reached
    :func:`interrupted` (some code swallowed it), take it back."""
    if task in _closing:
        _closing.discard(task)
        task.uncancel()


def unreadable(status: int, why: str, described: str, idempotent: bool) -> Dialog360Error:
    """The error for a 2xx answer that cannot be read as a success."""
    if idempotent:
        return APIError(f"unexpected response body ({why})", status=status, request=described)
    # The server accepted it: resending could deliver it twice (design.md, hardening).
    return DeliveryUnknownError(
        f"the server accepted the request (HTTP {status}) but its answer cannot be read "
        f"({why}); delivery unknown",
        request=described,
    )


def error_of(outcome: Reply | Failure, described: str, idempotent: bool) -> Dialog360Error:
    """The SDK error for the last attempt of a request that did not succeed."""
    if type(outcome) is Failure:
        if not idempotent and (outcome.sent or outcome.doubtful):
            what = "an earlier attempt" if outcome.doubtful and not outcome.sent else "the request"
            return DeliveryUnknownError(
                f"{what} may have reached the server; delivery unknown ({outcome.reason})",
                request=described,
            )
        return TransportError(
            outcome.reason, request=described, sent=outcome.sent, retryable=outcome.retryable
        )
    assert type(outcome) is Reply
    error = outcome.error or parse_error(outcome.status, outcome.body, outcome.headers, described)
    if not idempotent:
        if outcome.doubtful:
            return DeliveryUnknownError(
                f"an earlier attempt may have been delivered; delivery unknown ({error})",
                request=described,
                cause=error,
            )
        if isinstance(error, ServerError) and error.ambiguous:
            return DeliveryUnknownError(
                f"the server failed after it may have processed the request ({error})",
                request=described,
                cause=error,
            )
    return error
