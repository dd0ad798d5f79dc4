"""Turn any error response into the right APIError: one parser for every body format.

Formats (../shared/docs/360dialog-api.md §3.1): A. Meta ``{"error": {...}}``; B. On-Premise
``{"errors": [...]}``; C. 360dialog gateway ``{"meta": {"httpCode", "developerMessage"}}`` in camel
or snake case; D. Partner ``{"detail", "message"}``; E. Partner envelope
``{"meta", "status_code", "data": {"errors": {...}}}``. Classification is by the body's error code
first and the HTTP status second, as Meta advises ("build your app's error handling logic around
code values"). It never raises: any bytes give an APIError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _json
from ._retry import parse_retry_after
from .errors import (
    APIError,
    AuthenticationError,
    InvalidParameterError,
    NotEngagedError,
    PairRateLimitError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
)

__all__ = ["parse_error"]

_BY_CODE: dict[int, type[APIError]] = {
    4: RateLimitError,
    80007: RateLimitError,
    130429: RateLimitError,
    131056: PairRateLimitError,
    131048: SpamRateLimitError,
    131047: NotEngagedError,
    470: NotEngagedError,
    2048: NotEngagedError,
    0: AuthenticationError,
    190: AuthenticationError,
    100: InvalidParameterError,
    1009: InvalidParameterError,
    131008: InvalidParameterError,
    1: ServerError,
    2: ServerError,
    131000: ServerError,
    131016: ServerError,
    131057: ServerError,
    139103: ServerError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    422: InvalidParameterError,
    429: RateLimitError,
}
# The server may have acted before failing: a send that got one of these is "unknown".
_AMBIGUOUS_CODES = frozenset({1, 131000})
_UNPROCESSED_STATUSES = frozenset({502, 503})  # design.md: explicitly not processed
# 360dialog's gateway answers its per-endpoint limit with a 400 and this text (§3.2).
_GATEWAY_LIMIT_MARKERS = ("exceeded the limit", "exceeded the endpoint rate limit")


def parse_error(status: int, body: bytes, headers: Mapping[str, str], request: str) -> APIError:
    """Build the APIError subclass for an error response. Never raises."""
    try:
        data: Any = _json.loads(body) if body else None
    except ValueError:  # _json.loads turns every undecodable body into one, on both back ends
        data = None
    fields = _fields(data) if isinstance(data, dict) else {}
    code = fields.get("code")
    message = fields.get("message") or _text_fallback(status, body, data)
    cls = _classify(status, code, message)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "details": fields.get("details"),
        "fbtrace_id": fields.get("fbtrace_id"),
        "request": request,
        "body": data,
    }
    if issubclass(cls, RateLimitError):
        kwargs["retry_after"] = parse_retry_after(headers)
    elif cls is ServerError:
        kwargs["ambiguous"] = (
            code in _AMBIGUOUS_CODES if code in _BY_CODE else status not in _UNPROCESSED_STATUSES
        )
    return cls(message, **kwargs)


def _classify(status: int, code: int | None, message: str) -> type[APIError]:
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    if status == 400 and any(m in message.lower() for m in _GATEWAY_LIMIT_MARKERS):
        return RateLimitError
    return APIError


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """Pull code, message, details and fbtrace_id out of whichever format this is."""
    error = data.get("error")
    if isinstance(error, dict):  # A (also the block_users partial-failure body)
        return _from_meta_error(error)
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # B
        first = errors[0]
        return {
            "code": _int(first.get("code")),
            "message": _str(first.get("title")) or _str(first.get("message")),
            "details": _str(first.get("details")),
        }
    payload = data.get("data")
    if isinstance(payload, dict) and isinstance(payload.get("errors"), dict):  # E
        out = _from_meta_error(payload["errors"])
        out["message"] = out["message"] or _gateway_message(data.get("meta"))
        return out
    meta = data.get("meta")
    if isinstance(meta, dict) and (msg := _gateway_message(meta)):  # C, or E without errors
        return {"message": msg}
    if "detail" in data or "message" in data:  # D
        detail = data.get("detail")
        return {
            "message": _str(data.get("message")) or _str(detail),
            "details": _str(_json.dumps(detail).decode())
            if isinstance(detail, dict) and detail
            else None,
        }
    return {}


def _from_meta_error(error: dict[str, Any]) -> dict[str, Any]:
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    return {
        "code": _int(error.get("code")),
        "message": _str(error.get("message")),
        "details": _str(details) or _str(error.get("error_user_msg")),
        "fbtrace_id": _str(error.get("fbtrace_id")),
    }


def _gateway_message(meta: object) -> str | None:
    if not isinstance(meta, dict):
        return None
    return _str(meta.get("developerMessage")) or _str(meta.get("developer_message"))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 12:
        return int(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text_fallback(status: int, body: bytes, data: object) -> str:
    if 300 <= status < 400:
        return "redirect not followed (the API key is never sent to another origin)"
    if data is None and body:
        text = body[:200].decode("utf-8", "replace").strip()
        if text:
            return f"HTTP {status}: {text}"
    return f"HTTP {status}"
