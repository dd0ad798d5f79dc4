"""SessionPool: one aiohttp connector and session shared by the clients of many channels.

A 360dialog partner serves thousands of numbers, one API key each; a client per key over one
pool of keep-alive connections is cheaper than a session per key.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, TypeVar

import aiohttp

from ._attempt import check_timeout
from ._base import AsyncClosing, BaseClient, secret
from ._body import Connector
from ._cloud import Dialog360Client
from ._onprem import OnPremiseClient
from ._secret import Secret
from .errors import TransportError, ValidationError

__all__ = ["SessionPool"]

_C = TypeVar("_C", Dialog360Client, OnPremiseClient)


def _count(field: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        rule = "an integer >= 0" + (" or None" if optional else "")
        raise ValidationError(f"SessionPool.{field}", f"must be {rule}, got {value!r}")


class SessionPool(AsyncClosing):
    """Shared connections for many channels; ``async with SessionPool() as pool:`` closes all.

    Args:
        limit: connections open at once across all channels (aiohttp ``TCPConnector.limit``),
            0 for no bound.
        limit_per_host: connections per host, 0 for no separate bound.
        keepalive_timeout: seconds an idle connection stays open for reuse.
        ttl_dns_cache: seconds a DNS answer is cached (None: for ever).
        timeout: default per-attempt timeout for the pool's clients.

    Example::

        async with SessionPool(limit=200) as pool:
            for key in channel_keys:
                await pool.client(key).send_location(user, where)
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int = 0,
        keepalive_timeout: float = 30.0,
        ttl_dns_cache: int | None = 300,
        timeout: float | aiohttp.ClientTimeout = 30.0,
    ) -> None:
        _count("limit", limit)
        _count("limit_per_host", limit_per_host)
        _count("ttl_dns_cache", ttl_dns_cache, optional=True)
        if (
            isinstance(keepalive_timeout, bool)
            or not isinstance(keepalive_timeout, int | float)
            or not (math.isfinite(keepalive_timeout) and keepalive_timeout > 0)
        ):
            raise ValidationError(
                "SessionPool.keepalive_timeout",
                f"must be a positive number of seconds, got {keepalive_timeout!r}",
            )
        check_timeout(timeout)
        self._connector_options: dict[str, Any] = {
            "limit": limit,
            "limit_per_host": limit_per_host,
            "keepalive_timeout": keepalive_timeout,
            "ttl_dns_cache": ttl_dns_cache,
        }
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[tuple[Any, ...], BaseClient] = {}
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportError("the SessionPool is closed", sent=False, retryable=False)
        loop = asyncio.get_running_loop()
        if self._session is None:
            # Built on first use, inside the running loop that will drive it (aiobotocore does
            # the same): a connector binds the loop it is created in.
            connector = Connector(**self._connector_options)
            self._session = aiohttp.ClientSession(connector=connector)
            self._loop = loop
        elif loop is not self._loop:
            raise TransportError(
                "the SessionPool belongs to another event loop: create the pool inside the "
                "event loop that uses it",
                sent=False,
                retryable=False,
            )
        return self._session

    def client(self, api_key: str | Secret, **options: Any) -> Dialog360Client:
        """The Cloud API client of one channel, created once per key and options.

        Clients of one key share the channel's rate limiter whatever their options (and with
        every other client of the key in the process): see ``rate_limit`` of
        :class:`Dialog360Client`.

        Args:
            api_key: the channel's ``D360-API-KEY``.
            **options: any keyword argument of :class:`Dialog360Client` but ``session``.
        """
        key = secret(api_key, "api_key")
        del api_key  # no frame of a failed call may hold the key (error trackers)
        return self._cached(Dialog360Client, key, options)

    def on_premise_client(self, api_key: str | Secret, **options: Any) -> OnPremiseClient:
        """The On-Premise API client of one channel, created once per key and options."""
        key = secret(api_key, "api_key")
        del api_key
        return self._cached(OnPremiseClient, key, options)

    def _cached(self, cls: type[_C], key: Secret, options: dict[str, Any]) -> _C:
        if self._closed:
            raise TransportError("the SessionPool is closed", sent=False, retryable=False)
        if "session" in options:
            raise ValidationError("session", "a SessionPool's clients use the pool's session")
        options.setdefault("timeout", self._timeout)
        cache_key = (cls, key, tuple(sorted(options.items())))
        try:
            found = self._clients.get(cache_key)
        except TypeError:
            raise ValidationError(
                "options", f"must be hashable values, got {sorted(options)!r}"
            ) from None
        if found is None or found.closed:  # a closed client refuses calls: make a new one
            found = cls(key, **options)
            found._transport.borrow(self._get_session)
            self._clients[cache_key] = found
        assert isinstance(found, cls)
        return found

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    async def close(self) -> None:
        """Close every client and the shared connections. Safe to call twice."""
        self._closed = True
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"SessionPool(clients={len(self._clients)}, closed={self._closed})"
