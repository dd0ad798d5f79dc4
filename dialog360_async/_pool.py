"""SessionPool: one aiohttp connector and session shared by the clients of many channels.

A 360dialog partner serves thousands of numbers, one API key each; a client per key over one
pool of keep-alive connections is cheaper than a session per key.
"""

from __future__ import annotations

from typing import Any, TypeVar

import aiohttp

from ._base import AsyncClosing, BaseClient, secret
from ._cloud import Dialog360Client
from ._onprem import OnPremiseClient
from ._secret import Secret
from ._transport import make_timeout
from .errors import TransportError

__all__ = ["SessionPool"]

_C = TypeVar("_C", Dialog360Client, OnPremiseClient)


class SessionPool(AsyncClosing):
    """Shared connections for many channels; ``async with SessionPool() as pool:`` closes all.

    Args:
        limit: connections open at once across all channels (aiohttp ``TCPConnector.limit``).
        limit_per_host: connections per host, 0 for no separate bound.
        keepalive_timeout: seconds an idle connection stays open for reuse.
        ttl_dns_cache: seconds a DNS answer is cached.
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
        ttl_dns_cache: int = 300,
        timeout: float | aiohttp.ClientTimeout = 30.0,
    ) -> None:
        self._connector_options: dict[str, Any] = {
            "limit": limit,
            "limit_per_host": limit_per_host,
            "keepalive_timeout": keepalive_timeout,
            "ttl_dns_cache": ttl_dns_cache,
        }
        self._timeout = make_timeout(timeout)
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[tuple[Any, ...], BaseClient] = {}
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportError("the SessionPool is closed", sent=False, retryable=False)
        if self._session is None:
            # Built on first use, inside the running loop that will drive it (aiobotocore does
            # the same): a connector binds the loop it is created in.
            connector = aiohttp.TCPConnector(**self._connector_options)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    def client(self, api_key: str | Secret, **options: Any) -> Dialog360Client:
        """The Cloud API client of one channel, created once per key and options.

        Args:
            api_key: the channel's ``D360-API-KEY``.
            **options: any keyword argument of :class:`Dialog360Client` but ``session``.
        """
        return self._cached(Dialog360Client, api_key, options)

    def on_premise_client(self, api_key: str | Secret, **options: Any) -> OnPremiseClient:
        """The On-Premise API client of one channel, created once per key and options."""
        return self._cached(OnPremiseClient, api_key, options)

    def _cached(self, cls: type[_C], api_key: str | Secret, options: dict[str, Any]) -> _C:
        if self._closed:
            raise TransportError("the SessionPool is closed", sent=False, retryable=False)
        key = secret(api_key, "api_key")
        options.setdefault("timeout", self._timeout)
        cache_key = (cls, key, tuple(sorted(options.items())))
        found = self._clients.get(cache_key)
        if found is None:
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
