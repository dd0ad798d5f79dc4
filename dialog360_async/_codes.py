"""What the API's error codes mean, in a few words, and the reason word of a failure, for
reports (failures by reason and code).

Sources: ../shared/docs/webhooks-and-statuses.md §5 and ../shared/docs/360dialog-api.md §3.
"""

from __future__ import annotations

import asyncio
from typing import Final

from ._journal import JournalError
from .errors import (
    APIError,
    AuthenticationError,
    DeliveryUnknownError,
    InvalidParameterError,
    NotEngagedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
    SuppressedError,
    TemplateHaltedError,
    TransportError,
    UnreachableError,
    ValidationError,
    WindowClosedError,
)

__all__ = [
    "ACCOUNT_LOCKED",
    "DISABLED",
    "MEANINGS",
    "code_reason",
    "error_code",
    "failure_reason",
    "failure_title",
    "meaning",
]

MEANINGS: Final[dict[int, str]] = {
    0: "authentication failed",
    4: "request rate limit",
    100: "invalid parameter",
    190: "access token expired or invalid",
    368: "temporarily blocked for policy violations",
    470: "re-engagement: more than 24 h since the user wrote (On-Premise)",
    1026: "message undeliverable (On-Premise)",
    2048: "user not engaged in the last 24 h (On-Premise)",
    80007: "rate limit",
    130429: "throughput limit reached",
    130472: "user is in a marketing-message experiment",
    130497: "business restricted from this country",
    131000: "something went wrong",
    131005: "access denied",
    131008: "required parameter missing",
    131009: "parameter value invalid",
    131016: "service unavailable",
    131021: "recipient cannot be the sender",
    131026: "message undeliverable",
    131031: "business account locked",
    131037: "number without an approved display name",
    131042: "business payment issue",
    131045: "incorrect certificate",
    131047: "re-engagement: more than 24 h since the user wrote",
    131048: "spam rate limit",
    131049: "not delivered to keep engagement healthy (marketing limit)",
    131050: "user stopped marketing messages",
    131051: "unsupported message type",
    131053: "media upload error",
    131056: "too many messages to this user (pair rate limit)",
    131057: "account in maintenance",
    131062: "recipient type not supported for this message",
    131063: "marketing templates disabled for Cloud API",
    132000: "template parameter count mismatch",
    132001: "template does not exist or is not approved",
    132005: "template text too long",
    132007: "template policy violation",
    132012: "template parameter format mismatch",
    132015: "template paused (low quality)",
    132016: "template disabled",
    135000: "generic user error",
    137000: "recipient identity key mismatch",
}


def meaning(code: int | None) -> str:
    """A few words on what ``code`` means; ``""`` for a code this table does not know."""
    return "" if code is None else MEANINGS.get(code, "")


# The reason words of FailureCount.reason for the codes that name one (as the error classes do).
_REASONS: Final[dict[int, str]] = {
    **dict.fromkeys((4, 80007, 130429, 131056), "throttled"),
    131048: "spam-limit",
    **dict.fromkeys((131047, 470, 2048), "not-engaged"),
    **dict.fromkeys((0, 190), "authentication"),
    131005: "permission",
    131031: "account-locked",
    **dict.fromkeys((100, 1009, 131008, 131009), "invalid-parameter"),
    **dict.fromkeys((1, 2, 131000, 131016, 131057), "server-error"),
}
# Most specific first: the subclasses before their bases.
_BY_CLASS: Final = (
    (WindowClosedError, "window-closed"),
    (TemplateHaltedError, "template-halted"),
    (SpamRateLimitError, "spam-limit"),
    (RateLimitError, "throttled"),
    (NotEngagedError, "not-engaged"),
    (AuthenticationError, "authentication"),
    (PermissionDeniedError, "permission"),
    (InvalidParameterError, "invalid-parameter"),
    (ServerError, "server-error"),
    (UnreachableError, "unreachable"),
    (DeliveryUnknownError, "in-doubt"),
    (TransportError, "transport"),
    (JournalError, "journal"),
    (asyncio.CancelledError, "interrupted"),
)


ACCOUNT_LOCKED: Final = 131031
DISABLED: Final = (
    "has been disabled"  # 360dialog's "Your WhatsApp for Business API has been disabled"
)


def error_code(error: BaseException | None) -> int | None:
    """The API error code an error carries, if it carries one (never a bool)."""
    code = getattr(error, "code", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def failure_title(error: BaseException) -> str:
    """The title of a failure, as reports show it: the API's message, else the error's text."""
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) and message else str(error)
    return text[:300] or type(error).__name__


def code_reason(code: int | None) -> str | None:
    """The reason word an error code names, if it names one."""
    return None if code is None else _REASONS.get(code)


def failure_reason(error: BaseException) -> str:
    """The reason word of a failed send (see :class:`FailureCount`), from its error."""
    if isinstance(error, ValidationError):
        duplicate = error.field == "key" and "duplicate" in error.rule
        return "duplicate" if duplicate else "invalid-input"
    if isinstance(error, SuppressedError):
        return "suppressed" if error.until is None else "deferred"
    if isinstance(error, APIError):
        if error.code == ACCOUNT_LOCKED:
            return "account-locked"
        if DISABLED in (error.message or "").lower():
            return "channel-disabled"
    for kind, word in _BY_CLASS:
        if isinstance(error, kind):
            return word
    return code_reason(error_code(error)) or "other"
