"""The exceptions raised by dialog360_async.

One tree; catch the node that matches what you can handle::

    Dialog360Error
    ├── ValidationError            bad input, raised before any request is sent (also a ValueError)
    ├── APIError                   the server answered with an error
    │   ├── RateLimitError         429; codes 4, 80007, 130429; 360dialog's "exceeded the limit" 400
    │   │   └── PairRateLimitError 131056: too many messages to one user, only that user waits
    │   ├── SpamRateLimitError     131048: stop the campaign, never retried
    │   ├── NotEngagedError        131047, 470, 2048: the user has not written in the last 24 hours
    │   ├── AuthenticationError    401; codes 0, 190
    │   ├── PermissionDeniedError  403
    │   ├── InvalidParameterError  codes 100, 1009, 131008; HTTP 422
    │   └── ServerError            5xx; codes 1, 2, 131000, 131016
    ├── TransportError             the request could not be completed
    │   ├── DeliveryUnknownError   a send that may have reached the server; never retried by default
    │   └── UnreachableError       a bulk run's channel stayed unreachable for its outage_timeout
    └── PolicyError                a bulk run's campaign policy kept a message from being sent
        ├── SuppressedError        the recipient is on the store's suppression list (or deferred)
        ├── WindowClosedError      the user's 24-hour window is closed (outside_window="skip")
        └── TemplateHaltedError    the message's template was halted (paused or disabled)

Every error's text is built from redacted fields only: the API key and request headers never
appear in ``str``, ``repr`` or ``args``. Every error pickles and copies with its attributes
(errors cross process boundaries in task queues).
"""

from __future__ import annotations

from typing import Any, TypeVar

_E = TypeVar("_E", bound="Dialog360Error")

__all__ = [
    "APIError",
    "AuthenticationError",
    "DeliveryUnknownError",
    "Dialog360Error",
    "InvalidParameterError",
    "NotEngagedError",
    "PairRateLimitError",
    "PermissionDeniedError",
    "PolicyError",
    "RateLimitError",
    "ServerError",
    "SpamRateLimitError",
    "SuppressedError",
    "TemplateHaltedError",
    "TransportError",
    "UnreachableError",
    "ValidationError",
    "WindowClosedError",
]


def _rebuild(cls: type[_E], args: tuple[Any, ...]) -> _E:
    # BaseException.__new__ sets ``args`` without running ``__init__``: the subclasses' keyword
    # signatures cannot take ``args`` back, their attributes come from the pickled __dict__.
    return cls.__new__(cls, *args)


class Dialog360Error(Exception):
    """Base class of every exception this package raises."""

    retryable: bool = False
    """True when sending the same request again may succeed."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default, ``(cls, args, __dict__)``, calls ``cls(*args)`` on unpickling, which the
        # keyword-only signatures refuse. The __dict__ holds only redacted fields (errors never
        # keep headers or keys); a Secret in it would refuse to pickle rather than leak.
        return (_rebuild, (type(self), self.args), self.__dict__ or None)


class ValidationError(Dialog360Error, ValueError):
    """Input that the API would reject; raised before any network I/O.

    Attributes:
        field: dotted name of the offending field, e.g. ``"Location.latitude"``.
        rule: the rule that was broken, in words.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class APIError(Dialog360Error):
    """The 360dialog / WhatsApp API answered with an error.

    Attributes:
        status: HTTP status of the response.
        code: the API's error code (Meta ``error.code``, On-Premise ``errors[].code``), if any.
        message: the API's error message.
        details: longer explanation from the API, if any.
        fbtrace_id: Meta's trace id, quote it to support.
        request: redacted description of the request, e.g. ``"POST /messages"``.
        body: the parsed JSON error body (never contains request headers).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        request: str | None = None,
        body: Any = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.request = request
        self.body = body
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        text = f"{self.message} ({', '.join(parts)})"
        if self.details and self.details != self.message:
            text += f": {self.details}"
        if self.request:
            text += f" [{self.request}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request={self.request!r})"
        )


class RateLimitError(APIError):
    """A throughput or request-rate limit was hit; retry after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), if it said."""


class PairRateLimitError(RateLimitError):
    """131056: too many messages to the same user; only that user must wait (4^n seconds)."""


class SpamRateLimitError(APIError):
    """131048: the number hit WhatsApp's spam limit. Stop the campaign; never retried."""

    retryable = False


class NotEngagedError(APIError):
    """131047, 470, 2048: the user has not messaged the business in the last 24 hours."""


class AuthenticationError(APIError):
    """401 (codes 0, 190): the API key or token is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """403: the key may not use this endpoint, or the account is restricted."""


class InvalidParameterError(APIError):
    """100, 1009, 131008, 422: the API rejected a parameter."""


class ServerError(APIError):
    """5xx or a transient server code (1, 2, 131000, 131016).

    Attributes:
        ambiguous: True when the server may have processed the request before failing
            (500, 504, codes 1 and 131000); a send that failed so is not retried by default.
    """

    retryable = True

    def __init__(self, message: str, *, ambiguous: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.ambiguous = ambiguous


class TransportError(Dialog360Error):
    """The request could not be completed: connection, TLS, timeout or protocol failure.

    Attributes:
        request: redacted description of the request, e.g. ``"POST /messages"``.
        sent: False when the request provably never left the client (safe to retry).
    """

    def __init__(
        self, message: str, *, request: str | None = None, sent: bool = True, retryable: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.sent = sent
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} [{self.request}]" if self.request else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, request={self.request!r}, sent={self.sent})"
        )


class DeliveryUnknownError(TransportError):
    """A send failed after its request may have reached the server.

    The message may or may not have been delivered (read timeout, reset after sending, 500/504).
    It is not retried unless ``RetryPolicy(retry_ambiguous=True)``; reconcile with webhooks.

    Attributes:
        cause: the API error behind it, for an ambiguous 5xx answer.
    """

    def __init__(
        self, message: str, *, request: str | None = None, cause: APIError | None = None
    ) -> None:
        super().__init__(message, request=request, sent=True, retryable=False)
        self.cause = cause


class UnreachableError(TransportError):
    """A bulk run's channel failed to reach its server for ``outage_timeout`` seconds.

    Nothing was sent: the message may be sent again (a resume does).
    """

    def __init__(self, message: str, *, request: str | None = None) -> None:
        super().__init__(message, request=request, sent=False, retryable=False)


class PolicyError(Dialog360Error):
    """A bulk run did not send a message because of its campaign policy (nothing was sent).

    Attributes:
        code: the error code behind the rule, if one is.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SuppressedError(PolicyError):
    """The recipient is on the broadcast store's suppression list: the outcome is ``skipped``.

    Attributes:
        recipient: the suppressed number (digits).
        until: Unix time a deferral ends (131049), None for a suppression for good.
    """

    def __init__(
        self, message: str, *, recipient: str, code: int | None = None, until: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.recipient = recipient
        self.until = until


class WindowClosedError(PolicyError):
    """The user has not written in the last 24 hours and the run skips free-form messages to
    them (``outside_window="skip"``, or a converter that returned None)."""


class TemplateHaltedError(PolicyError):
    """An earlier send of the message's template through its channel failed with a code the
    policy halts the template for (132015 paused, 132016 disabled): not sent, ``cancelled``."""
