"""The one boundary between aiohttp and the SDK: every request of every client passes here.

aiohttp exceptions become SDK errors here and nowhere else. They are raised outside the
``except`` block so that no raw aiohttp exception (whose repr carries the request headers, and
so the API key) is ever chained to an SDK error.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from . import _json
from ._error_parser import parse_error
from ._version import __version__
from .errors import DeliveryUnknownError, ServerError, TransportError, ValidationError

__all__ = ["Transport", "exception_phase", "make_timeout", "validate_base_url"]

logger = logging.getLogger("dialog360_async")

USER_AGENT = f"dialog360_async/{__version__} aiohttp/{aiohttp.__version__}"


def validate_base_url(base_url: str) -> str:
    """``https://`` anywhere; ``http://`` only for loopback hosts (design.md)."""
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        raise ValidationError("base_url", f"is not a URL: {base_url!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError("base_url", f"must be an http(s) URL with a host, got {base_url!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValidationError(
            "base_url",
            f"must use https:// (http:// is allowed for loopback only), got {base_url!r}",
        )
    return str(url).rstrip("/")


def _is_loopback(host: str) -> bool:
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
        "_base_url",
        "_headers",
        "_middlewares",
        "_owns_session",
        "_session",
        "_session_middlewares",
        "_timeout",
        "base_url",
    )

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
        middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self._timeout = make_timeout(timeout)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        self._session = session
        self._owns_session = session is None
        self._middlewares = tuple(middlewares)
        # An external session keeps its own middlewares; ours are passed per request instead.
        self._session_middlewares: tuple[aiohttp.ClientMiddlewareType, ...] | None = (
            None if self._owns_session else self._middlewares
        )

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily so that constructing a client needs no running event loop.
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, middlewares=self._middlewares
            )
        return self._session

    async def close(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, parsed JSON or None)`` for a 2xx answer.

        Raises:
            APIError: the server answered with a non-2xx status (subclass by error code).
            DeliveryUnknownError: a non-idempotent request failed after it may have been sent.
            TransportError: the request could not be completed.
        """
        described = f"{method} {path}"
        data = None if body is None else _json.dumps(body)
        started = time.perf_counter()
        failure: TransportError | None = None
        try:
            async with self._get_session().request(
                method,
                self.base_url + path,
                data=data,
                params=params,
                headers=self._headers,
                allow_redirects=False,
                timeout=self._timeout,
                middlewares=self._session_middlewares,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                headers = resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _transport_error(exc, described, idempotent)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            outcome = repr(failure) if failure is not None else status
            logger.debug("%s -> %s in %.1f ms", described, outcome, elapsed)
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
