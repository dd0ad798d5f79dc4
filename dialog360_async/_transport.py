"""The one boundary between aiohttp and the SDK: every request of every client passes here.

aiohttp exceptions become SDK errors here and nowhere else. They are raised outside the
``except`` block so that no raw aiohttp exception (whose repr carries the request headers, and
so the API key) is ever chained to an SDK error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from . import _json
from ._error_parser import parse_error
from ._version import __version__
from .errors import DeliveryUnknownError, ServerError, TransportError, ValidationError

__all__ = ["Transport", "exception_phase", "is_loopback", "make_timeout", "validate_base_url"]

_URL_CACHE_SIZE = 64  # fixed paths only in practice; per-user On-Premise paths just miss
USER_AGENT = f"dialog360_async/{__version__} aiohttp/{aiohttp.__version__}"


def validate_base_url(base_url: str) -> str:
    """``https://`` anywhere; ``http://`` only for loopback hosts (design.md)."""
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        raise ValidationError("base_url", f"is not a URL: {base_url!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError("base_url", f"must be an http(s) URL with a host, got {base_url!r}")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ValidationError(
            "base_url",
            f"must use https:// (http:// is allowed for loopback only), got {base_url!r}",
        )
    return str(url).rstrip("/")


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (brackets allowed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_timeout(timeout: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """Seconds for one attempt become connect and read timeouts; ``total`` stays unset because
    aiohttp's ``total`` spans every retry and backoff sleep of the middleware chain."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError("timeout", f"must be a positive number of seconds, got {timeout!r}")
    return aiohttp.ClientTimeout(total=None, connect=float(timeout), sock_read=float(timeout))


def exception_phase(exc: BaseException) -> tuple[bool, bool]:
    """``(sent, retryable)`` for an exception raised by an attempt.

    ``sent`` is False only when the request provably never left the client
    (../shared/docs/reliability-notes.md §2.3); a TLS verification failure is never retryable.
    """
    if isinstance(exc, aiohttp.ClientSSLError):
        return False, False
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False, True
    return True, True


class Transport:
    """Holds the session, the auth headers and the base URL of one client."""

    __slots__ = (
        "_call_middlewares",
        "_headers",
        "_owns_session",
        "_send_middlewares",
        "_session",
        "_timeout",
        "_urls",
        "base_url",
    )

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
        send_middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
        call_middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self._timeout = make_timeout(timeout)
        self._urls: dict[str, URL] = {}
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        # A callable is a SessionPool's shared session, created inside the running loop.
        self._session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession] | None = session
        self._owns_session = session is None
        # Passed per request (replacing any session-level ones), so that an external session
        # works too and sends and idempotent calls get their own retry rule.
        self._send_middlewares = tuple(send_middlewares)
        self._call_middlewares = tuple(call_middlewares)

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if isinstance(session, aiohttp.ClientSession) and not (
            self._owns_session and session.closed
        ):
            return session
        if session is None or isinstance(session, aiohttp.ClientSession):
            # Created lazily so that constructing a client needs no running event loop.
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            return self._session
        return session()

    def _url(self, path: str) -> URL:
        # Parsing the same URL string on every send is measurable on the hot path.
        url = self._urls.get(path)
        if url is None:
            url = URL(self.base_url + path)
            if len(self._urls) < _URL_CACHE_SIZE:
                self._urls[path] = url
        return url

    def borrow(self, source: Callable[[], aiohttp.ClientSession]) -> None:
        """Use a session owned elsewhere (a SessionPool's), fetched at each request."""
        self._session = source
        self._owns_session = False

    async def close(self) -> None:
        """Close the session if this transport created it."""
        session = self._session
        if self._owns_session and isinstance(session, aiohttp.ClientSession):
            await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        middlewares: tuple[aiohttp.ClientMiddlewareType, ...] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, parsed JSON or None)`` for a 2xx answer.

        Raises:
            APIError: the server answered with a non-2xx status (subclass by error code).
            DeliveryUnknownError: a non-idempotent request failed after it may have been sent.
            TransportError: the request could not be completed.
        """
        described = f"{method} {path}"
        data = None if body is None else _json.dumps(body)
        failure: TransportError | None = None
        try:
            async with self._get_session().request(
                method,
                self._url(path),
                data=data,
                params=params,
                headers=self._headers,
                allow_redirects=False,
                timeout=self._timeout,
                middlewares=middlewares
                or (self._call_middlewares if idempotent else self._send_middlewares),
            ) as resp:
                status = resp.status
                raw = await resp.read()
                headers = resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _transport_error(exc, described, idempotent)
        if failure is not None:
            raise failure
        if 200 <= status < 300:
            if not raw:
                return status, None
            try:
                return status, _json.loads(raw)
            except ValueError:
                pass
        error = parse_error(status, raw, headers, described)
        if not idempotent and isinstance(error, ServerError) and error.ambiguous:
            raise DeliveryUnknownError(
                f"the server failed after it may have processed the request ({error})",
                request=described,
                cause=error,
            )
        raise error


def _transport_error(exc: BaseException, request: str, idempotent: bool) -> TransportError:
    sent, retryable = exception_phase(exc)
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if sent and not idempotent:
        return DeliveryUnknownError(
            f"the request may have reached the server; delivery unknown ({reason})",
            request=request,
        )
    return TransportError(reason, request=request, sent=sent, retryable=retryable)
