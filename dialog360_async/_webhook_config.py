"""A channel's webhook: where 360dialog POSTs its notifications, and 360dialog's rules for it.

Set per number with ``POST <base>/v1/configs/webhook`` and ``{"url", "headers"}`` on both
hosts (the path keeps ``/v1`` on waba-v2); ``GET`` on the same path returns the same shape
(../shared/docs/webhooks-and-statuses.md §2.1). The URL must be HTTPS, on the default port,
with no ``_`` in the host, and header names have no ``_`` either (§2.2). Loopback hosts may
use ``http://`` and a port, so that the SDK can be pointed at a local fake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

import attrs
from yarl import URL

from . import _validation as v
from ._transport import is_loopback
from .errors import APIError, ValidationError

__all__ = ["WEBHOOK_PATH", "WebhookConfig", "confirmed", "webhook_body", "webhook_config"]

WEBHOOK_PATH = "/v1/configs/webhook"
_MAX_URL = 2048  # what browsers and most proxies accept; 360dialog documents no bound
_HEADER_NAME = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")  # an RFC 9110 token, minus "_"
_NOT_IN_URL = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff]")  # spaces, controls, surrogates


def _copy(headers: Mapping[str, str]) -> dict[str, str]:
    return dict(headers)


def _masked(headers: Mapping[str, str]) -> str:
    # Header values are the receiver's credentials (``Authorization: <secret>``, §2.3).
    return "{" + ", ".join(f"{name!r}: '***'" for name in headers) + "}"


def _masked_url(url: str) -> str:
    # A query string or a password in a webhook URL is as secret as a header value.
    try:
        parsed = URL(url)
        if parsed.password is not None:
            parsed = parsed.with_password("***")
        if parsed.query_string:
            parsed = parsed.with_query(dict.fromkeys(parsed.query, "***"))
    except (TypeError, ValueError):
        return "'***'"  # a repr must not raise: error trackers repr every local
    return repr(str(parsed))


@attrs.frozen(kw_only=True)
class WebhookConfig:
    """Where a channel's webhooks go: a URL and the headers sent with every notification.

    The repr shows header names, never their values (they are usually secrets), and masks
    the URL's query values and password.
    """

    url: str = attrs.field(repr=_masked_url)
    """The endpoint 360dialog POSTs notifications to."""
    headers: dict[str, str] = attrs.field(factory=dict, converter=_copy, repr=_masked, hash=False)
    """Headers 360dialog sends with every notification (a copy: changing it changes nothing)."""


def _url(value: object) -> str:
    # The messages never repeat the URL: its query string may hold a token.
    if not isinstance(value, str) or not value:
        raise ValidationError("url", f"must be a non-empty string, got {type(value).__name__}")
    if len(value) > _MAX_URL:
        raise ValidationError("url", f"must be at most {_MAX_URL} characters, got {len(value)}")
    found = _NOT_IN_URL.search(value)
    if found is not None:
        raise ValidationError(
            "url",
            f"must not contain spaces or control characters "
            f"(U+{ord(found.group()):04X} at index {found.start()})",
        )
    try:
        parsed = URL(value)
        host = parsed.host
        port = parsed.explicit_port
    except ValueError:
        raise ValidationError("url", "is not a valid URL") from None
    if not parsed.absolute or parsed.scheme not in ("http", "https") or not host:
        raise ValidationError("url", "must be an absolute https:// URL with a host")
    if is_loopback(host):
        return value
    if parsed.scheme != "https":
        raise ValidationError("url", "must use https:// (http:// is allowed for loopback only)")
    if port is not None:
        raise ValidationError("url", "must not name a port: 360dialog calls webhooks on 443")
    if "_" in host:
        raise ValidationError("url", "must not have '_' in its host name (360dialog refuses it)")
    return value


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            "headers", f"must be a mapping of header names to values, got {type(value).__name__}"
        )
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, header in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError(
                "headers",
                f"names must be HTTP header names without '_' (360dialog refuses it), "
                f"got {v.shown(name)}",
            )
        if name.lower() in seen:
            raise ValidationError("headers", f"names {name!r} more than once (case-insensitive)")
        seen.add(name.lower())
        rule = v.token_rule(header)
        if rule is not None or not isinstance(header, str):
            raise ValidationError(f"headers[{name!r}]", str(rule))  # never the value
        checked[name] = header
    return checked


def webhook_body(url: object, headers: object) -> dict[str, Any]:
    """The body of ``POST /v1/configs/webhook``, checked before any I/O."""
    return {"url": _url(url), "headers": _headers(headers)}


def _header_map(value: object) -> TypeGuard[dict[str, str]]:
    return type(value) is dict and all(type(k) is str and type(h) is str for k, h in value.items())


def webhook_config(data: Any, *, status: int, request: str) -> WebhookConfig | None:
    """A ``GET`` answer ``{"url", "headers"}`` as a WebhookConfig; None when no URL is set.

    A body of another shape is an APIError that does not carry the body (it may hold the
    header values).
    """
    if type(data) is dict:
        url = data.get("url")
        headers = data.get("headers")
        if headers is None:
            headers = {}
        if (url is None or type(url) is str) and _header_map(headers):
            return WebhookConfig(url=url, headers=headers) if url else None
    raise APIError(
        "unexpected response body: expected {url, headers}", status=status, request=request
    )


def confirmed(data: Any, sent: Mapping[str, Any]) -> WebhookConfig:
    """What a ``POST``'s answer says was set; what was sent, where the answer leaves it out
    (the API accepted it: the answer was a 2xx)."""
    answer = data if type(data) is dict else {}
    url = answer.get("url")
    headers = answer.get("headers")
    return WebhookConfig(
        url=url if type(url) is str and url else sent["url"],
        headers=headers if _header_map(headers) else sent["headers"],
    )
