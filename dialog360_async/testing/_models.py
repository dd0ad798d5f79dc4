"""Value types of the fake: scripted responses and recorded requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

REDACTED = "***"
SECRET_HEADERS = frozenset({"d360-api-key", "x-api-key", "authorization"})
# Graph API clients may pass the token as ``?access_token=``; recordings are served over HTTP.
SECRET_QUERY = frozenset({"access_token", "api_key", "apikey", "key", "token"})


@attrs.frozen(kw_only=True)
class FakeResponse:
    """One scripted answer for `FakeDialog360.script`.

    Attributes:
        status: HTTP status to answer with.
        json: Body to send as JSON (ignored when ``body`` is set; None and no body = empty).
        body: Raw body bytes, e.g. non-JSON garbage.
        headers: Extra response headers, e.g. ``{"Retry-After": "2"}``.
        delay: Seconds to wait before answering (or before closing).
        close: Read the request, then drop the connection without answering.
        process: Run the real handler first (state changes and ``sends`` count happen), then
            answer with this response: "processed, but the client saw an error".
        redirect_to: Answer 307 with this ``Location``.
    """

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    close: bool = False
    process: bool = False
    redirect_to: str | None = None


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """A request the fake received; secret headers are replaced by ``"***"``.

    Attributes:
        method: HTTP method.
        path: URL path, without the query string.
        query: Query parameters (first value wins); ``access_token``, ``api_key``, ``key`` and
            ``token`` values are redacted.
        headers: Request headers with ``D360-API-KEY``, ``X-API-Key`` and
            ``Authorization`` redacted; lookups are case-insensitive.
        json: The parsed JSON body, or None if absent or not JSON.
        channel: Opaque label of the channel the request authenticated as, if any.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    json: Any
    channel: str | None
