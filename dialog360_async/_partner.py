"""PartnerClient: block_users of any channel through the 360dialog Partner API (hub).

Auth is the partner's ``X-API-Key`` or a legacy Bearer token (360dialog-api.md §1, §2.6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from urllib.parse import quote

import aiohttp

from . import _validation as v
from ._attempt import DEFAULT_MAX_RESPONSE_BYTES
from ._base import BaseClient, secret
from ._cloud import block_in_batches
from ._converter import structure_response
from ._results import BlockResult, UserRef
from ._retry import RetryPolicy
from ._secret import Secret
from ._wire import PartnerBlockEnvelope, PartnerListEnvelope
from .errors import ValidationError

__all__ = ["DEFAULT_PARTNER_URL", "PartnerClient"]

DEFAULT_PARTNER_URL = "https://hub.360dialog.io/api/v2"


class PartnerClient(BaseClient):
    """Client of the 360dialog Partner API for one partner.

    Args:
        partner_id: your partner id (ends in ``PA``).
        api_key: a Partner API key (sent as ``X-API-Key``); or give ``token`` instead.
        token: a legacy Partner API bearer token.
        base_url, retry, timeout, session, max_response_bytes: as for :class:`Dialog360Client`.
    """

    __slots__ = ("_partner_path",)

    def __init__(
        self,
        *,
        partner_id: str,
        api_key: str | Secret | None = None,
        token: str | Secret | None = None,
        base_url: str = DEFAULT_PARTNER_URL,
        retry: RetryPolicy | None = RetryPolicy(),
        timeout: float | aiohttp.ClientTimeout = 30.0,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        # Only a Secret stays in this frame: error trackers record the locals of every frame
        # of a traceback, and a failed construction must not hand them the key.
        try:
            self._partner_path = f"/partners/{_segment(partner_id, 'partner_id')}/channels"
            if (api_key is None) == (token is None):
                raise ValidationError("api_key", "give exactly one of api_key= and token=")
            if api_key is not None:
                header, key = "X-API-Key", secret(api_key, "api_key")
            else:
                header, key = "Authorization", Secret(f"Bearer {secret(token, 'token').reveal()}")
        finally:
            del api_key, token
        super().__init__(
            base_url=base_url,
            auth_headers={header: key},
            retry=retry,
            limiter=None,
            timeout=timeout,
            session=session,
            max_response_bytes=max_response_bytes,
        )

    async def block_users(self, channel_id: str, users: Iterable[str] | str) -> BlockResult:
        """Block users of a channel, 1,000 per request; per-user failures land in ``failed``."""
        return await self._block("POST", channel_id, users)

    async def unblock_users(self, channel_id: str, users: Iterable[str] | str) -> BlockResult:
        """Unblock users of a channel, 1,000 per request."""
        return await self._block("DELETE", channel_id, users)

    async def _block(self, method: str, channel_id: str, users: Iterable[str] | str) -> BlockResult:
        path = self._path(channel_id)

        async def send(chunk: list[str]) -> BlockResult:
            body = {"block_users": [{"user": u} for u in chunk]}
            status, data = await self._request(method, path, body=body)
            parsed = structure_response(
                data, PartnerBlockEnvelope, status=status, request=f"{method} {path}"
            )
            return parsed.data.block_users.result()

        return await block_in_batches(users, send, envelope=True)

    async def list_blocked_users(self, channel_id: str) -> AsyncIterator[UserRef]:
        """Every blocked user of a channel (the Partner API documents no paging)."""
        path = self._path(channel_id)
        status, data = await self._request("GET", path)
        envelope = structure_response(
            data, PartnerListEnvelope, status=status, request=f"GET {path}"
        )
        for user in envelope.data.block_users:
            yield user

    def _path(self, channel_id: str) -> str:
        return f"{self._partner_path}/{_segment(channel_id, 'channel_id')}/block_users"


def _segment(value: str, field: str) -> str:
    return quote(v.token(value, field), safe="")
