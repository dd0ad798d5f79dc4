"""Dialog360Client: the 360dialog Cloud API (waba-v2): messages and the block_users endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp

from . import _validation as v
from ._base import BaseClient, secret
from ._converter import structure_response, unstructure
from ._models import Contact, ContactsMessage, Location, LocationMessage, Message
from ._results import BlockResult, SentMessage, UserRef
from ._retry import RetryPolicy
from ._secret import Secret
from ._wire import BlockResponse, ListResponse
from .errors import APIError

__all__ = ["DEFAULT_CLOUD_URL", "Dialog360Client", "block_result_from_error", "contacts_tuple"]

DEFAULT_CLOUD_URL = "https://waba-v2.360dialog.io"
_PARTIAL_BLOCK_FAILURE = 139100  # Meta: HTTP 400 with per-user results plus this top-level code
_LIST_PAGE_SIZE = "100"


def contacts_tuple(contacts: Contact | Iterable[Contact]) -> tuple[Contact, ...]:
    """Accept one contact card or several."""
    return (contacts,) if isinstance(contacts, Contact) else tuple(contacts)


def block_result_from_error(error: APIError, envelope: bool = False) -> BlockResult | None:
    """The per-user results inside a partial-failure 400, or None for any other error."""
    if error.code != _PARTIAL_BLOCK_FAILURE or not isinstance(error.body, dict):
        return None
    data: Any = error.body.get("data") if envelope else error.body
    if not isinstance(data, dict) or not isinstance(data.get("block_users"), dict):
        return None
    try:
        parsed = structure_response(
            data, BlockResponse, status=error.status, request=error.request or ""
        )
    except APIError:
        return None
    return parsed.block_users.result()


class Dialog360Client(BaseClient):
    """Client of the 360dialog Cloud API for one channel (phone number).

    Args:
        api_key: the channel's ``D360-API-KEY``. Never shown in reprs, logs or errors.
        base_url: API root; ``http://`` is accepted for loopback hosts only.
        retry: retry policy, or None for no retries.
        rate_limit: messages per second for this channel, or None for no client-side limit.
        timeout: seconds for one attempt (connect and read), or an ``aiohttp.ClientTimeout``.
        session: an ``aiohttp.ClientSession`` to use; the client will not close it.

    Example::

        async with Dialog360Client(api_key) as client:
            where = Location(latitude=52.52, longitude=13.40)
            sent = await client.send_location("+4915112345678", where)
    """

    __slots__ = ()

    def __init__(
        self,
        api_key: str | Secret,
        *,
        base_url: str = DEFAULT_CLOUD_URL,
        retry: RetryPolicy | None = RetryPolicy(),
        rate_limit: float | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        key = secret(api_key, "api_key")
        super().__init__(
            base_url=base_url,
            auth_headers={"D360-API-KEY": key.reveal()},
            retry=retry,
            rate_limit=rate_limit,
            timeout=timeout,
            session=session,
        )

    async def send(self, message: Message) -> SentMessage:
        """Send a location or contacts message.

        Raises:
            ValidationError: ``message`` is not a LocationMessage or ContactsMessage.
            APIError: the API refused it (see the subclasses in ``dialog360_async.errors``).
            DeliveryUnknownError: it may or may not have been sent.
        """
        return await self._deliver(message)

    def _message_body(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        body.update(unstructure(message))
        return body

    async def send_location(self, to: str, location: Location) -> SentMessage:
        """Send a location to ``to`` (a phone number or wa_id)."""
        return await self.send(LocationMessage(to=to, location=location))

    async def send_contacts(self, to: str, contacts: Contact | Iterable[Contact]) -> SentMessage:
        """Send one or more (up to 257) contact cards to ``to``."""
        return await self.send(ContactsMessage(to=to, contacts=contacts_tuple(contacts)))

    async def block_users(self, users: Iterable[str] | str) -> BlockResult:
        """Block users (who must have written in the last 24 hours), 1,000 per request.

        Users that could not be blocked are in ``BlockResult.failed``; this does not raise for
        them.
        """
        return await self._block("POST", users)

    async def unblock_users(self, users: Iterable[str] | str) -> BlockResult:
        """Unblock users, 1,000 per request."""
        return await self._block("DELETE", users)

    async def _block(self, method: str, users: Iterable[str] | str) -> BlockResult:
        checked = v.recipients(users)
        total = BlockResult()
        for start in range(0, len(checked), v.MAX_BLOCK_BATCH):
            chunk = checked[start : start + v.MAX_BLOCK_BATCH]
            body = {"messaging_product": "whatsapp", "block_users": [{"user": u} for u in chunk]}
            try:
                status, data = await self._request(method, "/block_users", body=body)
            except APIError as error:
                partial = block_result_from_error(error)
                if partial is None:
                    raise
                total += partial
                continue
            parsed = structure_response(
                data, BlockResponse, status=status, request=f"{method} /block_users"
            )
            total += parsed.block_users.result()
        return total

    async def list_blocked_users(self) -> AsyncIterator[UserRef]:
        """Every blocked user, following the paging cursors to the end."""
        params = {"limit": _LIST_PAGE_SIZE}
        while True:
            status, data = await self._request("GET", "/block_users", params=params)
            page = structure_response(data, ListResponse, status=status, request="GET /block_users")
            for item in page.data:
                for user in item.users():
                    yield user
            cursor = page.next_cursor()
            if cursor is None or not page.data or cursor == params.get("after"):
                return
            params = {"limit": _LIST_PAGE_SIZE, "after": cursor}
