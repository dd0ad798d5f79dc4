"""The one boundary between aiohttp and the SDK: every request of every client passes here.

An attempt (``_attempt.py``) is one ``session.request`` and its body, within one time bound and
one size cap; every aiohttp exception it meets becomes a :class:`Failure` here. The retry
middleware decides between attempts; what the last one means is decided in
:meth:`Transport.request`, which raises every SDK error itself: outside any ``except`` block and
outside aiohttp's frames, whose locals hold the request headers (and so the API key) that error
trackers record.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from . import _json
from ._attempt import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Failure,
    Reply,
    aiohttp_timeout,
    check_max_response_bytes,
    check_timeout,
    error_of,
    forget,
    interrupt,
    interrupted,
    unreadable,
)
from ._body import Connector, read_capped
from ._secret import Secret
from ._version import __version__
from .errors import TransportError, ValidationError

if TYPE_CHECKING:
    from ._middleware import AttemptReport, RetryMiddleware

__all__ = ["Transport", "exception_phase", "failure_of", "is_loopback", "validate_base_url"]

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


def failure_of(exc: BaseException) -> Failure:
    """What an exception raised by an attempt means (the exception itself is not kept)."""
    sent, retryable = exception_phase(exc)
    kind = type(exc).__name__
    reason = f"{kind}: {exc}" if str(exc) else kind
    timeout = isinstance(exc, TimeoutError)
    return Failure(kind, reason, sent=sent, retryable=retryable, timeout=timeout)


class _Expiry:
    """The timer callback that ends an attempt: it cancels the task and remembers it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()

    def settle(self) -> bool:
        """Take back the cancellation this timer made (once); whether it fired."""
        if not self.fired:
            return False
        self.fired = False
        self.task.uncancel()
        return True


def _cancelled_while_connecting(exc: BaseException) -> bool:
    # The connector opens connections and never writes a request: a cancellation that passed
    # through it interrupted a pool wait, a DNS lookup, a TCP connect or a TLS handshake.
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "aiohttp.connector":
            return True
        tb = tb.tb_next
    return False


class Transport:
    """Holds the session, the auth headers, the limits and the base URL of one client."""

    __slots__ = (
        "_aiohttp_timeout",
        "_call_retry",
        "_calls",
        "_closed",
        "_headers",
        "_loop",
        "_max_bytes",
        "_owns_session",
        "_send_retry",
        "_session",
        "_timeout",
        "_urls",
        "base_url",
    )

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str | Secret],
        timeout: float | aiohttp.ClientTimeout,
        session: aiohttp.ClientSession | None,
        send_retry: RetryMiddleware,
        call_retry: RetryMiddleware,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self._timeout = check_timeout(timeout)
        self._aiohttp_timeout = aiohttp_timeout(timeout)
        self._max_bytes = check_max_response_bytes(max_response_bytes)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValidationError(
                "session", f"must be an aiohttp.ClientSession or None, got {session!r}"
            )
        if session is not None and session.closed:
            raise ValidationError("session", "is closed")
        self._urls: dict[str, URL] = {}
        # A callable is a SessionPool's shared session, created inside the running loop.
        self._session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession] | None = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = (
            None if session is None else getattr(session, "_loop", None)
        )
        self._closed = False
        self._calls: set[asyncio.Task[Any]] = set()  # the tasks in request(), for close()
        self._send_retry = send_retry
        self._call_retry = call_retry
        # Built last, once everything is validated: no frame of a failed constructor holds it.
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **{k: v.reveal() if isinstance(v, Secret) else v for k, v in headers.items()},
        }

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def _open(self, described: str) -> aiohttp.ClientSession:
        """The session to use now, or a TransportError saying why there is none."""
        if self._closed:
            raise TransportError(
                "the client is closed", request=described, sent=False, retryable=False
            )
        session = self._session
        if callable(session):
            return session()  # the pool checks its own state and loop
        loop = asyncio.get_running_loop()
        if session is None:
            # Created lazily so that constructing a client needs no running event loop.
            session = self._session = aiohttp.ClientSession(connector=Connector())
            self._loop = loop
        elif self._loop is not loop:
            if self._loop is None:
                self._loop = loop
            else:
                raise TransportError(
                    "the client's session belongs to another event loop: create the client "
                    "(or its session) inside the event loop that uses it",
                    request=described,
                    sent=False,
                    retryable=False,
                )
        if session.closed:
            raise TransportError(
                "the session given to the client is closed",
                request=described,
                sent=False,
                retryable=False,
            )
        return session

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
        """Refuse further requests, end the calls in flight with an SDK error, and close the
        session if this transport created it."""
        self._closed = True
        # aiohttp does not wake a body read when it closes the connection under it: the read
        # would wait for its timeout. The calls are interrupted instead.
        interrupt(self._calls)
        session = self._session
        if self._owns_session and isinstance(session, aiohttp.ClientSession):
            await session.close()

    def __repr__(self) -> str:
        # Never the headers; and safe on a half-built transport (trackers repr failed frames).
        base_url = getattr(self, "base_url", "?")
        return f"Transport(base_url={base_url!r}, closed={getattr(self, '_closed', False)})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        retry: RetryMiddleware | None = None,
        report: AttemptReport | None = None,
        read: Callable[[Any], Any] | None = None,
    ) -> tuple[int, Any]:
        """Send one request (with retries); return ``(status, body)`` for a 2xx answer.

        ``body`` is the parsed JSON (None when empty), or ``read(parsed)`` when ``read`` is
        given; ``read`` returns None for a body that is no success.

        Raises:
            APIError: the server answered with an error (subclass by error code), or an
                idempotent call got a 2xx it cannot read.
            DeliveryUnknownError: a non-idempotent request failed after it may have been sent,
                or its 2xx answer cannot be read as a success.
            TransportError: the request could not be completed.
        """
        described = f"{method} {path}"
        session = self._open(described)
        data = None if body is None else _json.dumps(body)
        url = self._url(path)
        task: asyncio.Task[Any] = asyncio.current_task()  # type: ignore[assignment]

        async def attempt(remaining: float | None) -> Reply | Failure:
            if self._closed or session.closed:
                closed = "client" if self._closed else "session"
                return Failure("Closed", f"the {closed} was closed", sent=False, retryable=False)
            bound = self._timeout
            if remaining is not None and (bound is None or remaining < bound):
                bound = remaining
            expiry = handle = None
            if bound is not None:
                # One timer for the whole attempt: loop.call_at costs a third of asyncio.timeout.
                expiry = _Expiry(task)
                loop = asyncio.get_running_loop()
                handle = loop.call_at(loop.time() + bound, expiry)
            try:
                async with session.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=self._headers,
                    allow_redirects=False,
                    timeout=self._aiohttp_timeout,
                    middlewares=(),  # an external session's own are not ours to run
                ) as resp:
                    length, cap = resp.content_length, self._max_bytes
                    if length is not None and length > cap:
                        raw, complete = b"", False
                    else:
                        raw, complete = await read_capped(resp.content, cap)
                    if not complete:
                        resp.close()  # the connection is dropped, not drained
                    return Reply(resp.status, resp.headers, raw, complete)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = failure_of(exc)
            except asyncio.CancelledError as exc:
                timed_out = expiry is not None and expiry.settle()
                closing = interrupted()
                if not closing and task.cancelling():
                    raise  # our caller cancelled us
                # Where the attempt was when it stopped says whether the request may have left.
                sent = not _cancelled_while_connecting(exc)
                if timed_out and not closing:
                    reason = f"TimeoutError: no complete answer within {bound:g} s"
                    failure = Failure(
                        "TimeoutError", reason, sent=sent, retryable=True, timeout=True
                    )
                else:
                    # The client closed, or (nobody cancelled the task) aiohttp cancelled a
                    # future of ours because its session is closing: it does so to requests
                    # waiting for a connection.
                    closed = "client" if self._closed else "session"
                    reason = f"the {closed} was closed while the request was in flight"
                    failure = Failure("Closed", reason, sent=sent, retryable=False)
            finally:
                if expiry is not None and handle is not None:
                    handle.cancel()
                    expiry.settle()  # a cancel that some code swallowed must not linger
            return failure

        calls = self._calls
        calls.add(task)
        try:
            outcome = await (retry or (self._call_retry if idempotent else self._send_retry))(
                attempt, described, report
            )
        except asyncio.CancelledError:
            if not interrupted():
                raise
            # A close reached the call where no attempt could report it (in a custom limiter
            # or sleep): whether an earlier attempt was processed is not known.
            outcome = Failure("Closed", "the client was closed", sent=True, retryable=False)
        finally:
            calls.discard(task)
            forget(task)
        if type(outcome) is Reply and 200 <= outcome.status < 300:
            if outcome.complete:
                raw = outcome.body
                try:
                    parsed = _json.loads(raw) if raw else None
                except ValueError:
                    why = "not JSON"
                else:
                    if read is None:
                        return outcome.status, parsed
                    result = read(parsed)
                    if result is not None:
                        return outcome.status, result
                    why = "no success in it" if raw else "empty"
            else:
                why = f"over max_response_bytes={self._max_bytes}"
            raise unreadable(outcome.status, why, described, idempotent)
        raise error_of(outcome, described, idempotent)
