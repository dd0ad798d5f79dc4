"""Dialog360Client: the 360dialog Cloud API (waba-v2): messages and the block_users endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from . import _validation as v
from ._base import MessagingClient, check_callback_data
from ._converter import structure_response, unstructure
from ._models import Message
from ._results import BlockResult, UserRef
from ._wire import BlockResponse, ListResponse
from .errors import APIError

__all__ = ["DEFAULT_CLOUD_URL", "Dialog360Client", "block_in_batches"]

DEFAULT_CLOUD_URL = "https://waba-v2.360dialog.io"
_PARTIAL_BLOCK_FAILURE = 139100  # Meta: HTTP 400 with per-user results plus this top-level code
_LIST_PAGE_SIZE = "100"


async def block_in_batches(
    users: Iterable[str] | str,
    send: Callable[[list[str]], Awaitable[BlockResult]],
    *,
    envelope: bool = False,
) -> BlockResult:
    """Validate ``users``, send them 1,000 per request, and add up the per-user results.

    A partial failure (HTTP 400 with code 139100 and per-user lists) is a result, not an error.
    ``envelope`` says the lists sit in the Partner API's ``data`` envelope.
    """
    checked = v.recipients(users)
    total = BlockResult()
    for start in range(0, len(checked), v.MAX_BLOCK_BATCH):
        try:
            total += await send(checked[start : start + v.MAX_BLOCK_BATCH])
        except APIError as error:
            partial = _partial_result(error, envelope)
            if partial is None:
                raise
            total += partial
    return total


def _partial_result(error: APIError, envelope: bool) -> BlockResult | None:
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


class Dialog360Client(MessagingClient):
    """Client of the 360dialog Cloud API for one channel (phone number).

    Args:
        api_key: the channel's ``D360-API-KEY``. Never shown in reprs, logs or errors.
        base_url: API root, ``https://waba-v2.360dialog.io`` by default; ``http://`` is
            accepted for loopback hosts only.
        retry: retry policy, or None for no retries.
        rate_limit: the channel's send pacing, shared by every client of the key in the
            process: by default one adaptive limiter per key at 80 msg/s (x0.7 on 130429,
            then recovering); a number sets that channel's rate (the latest wins); a Limiter
            is used as given by this client; None sends unpaced.
        timeout: seconds for one attempt (connect, headers and body), or an
            ``aiohttp.ClientTimeout``.
        session: an ``aiohttp.ClientSession`` to use; the client will not close it.
        max_response_bytes: the largest response body read; a larger one is an error.

    Sends take ``callback_data=`` (``biz_opaque_callback_data``, echoed in status webhooks);
    ``set_webhook``/``get_webhook`` manage the channel's webhook.

    Example::

        async with Dialog360Client(api_key) as client:
            where = Location(latitude=52.52, longitude=13.40)
            sent = await client.send_location("+4915112345678", where)
    """

    __slots__ = ()
    DEFAULT_URL = DEFAULT_CLOUD_URL

    def _message_body(self, message: Message, callback_data: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        body.update(unstructure(message))
        if message.type == "template":
            body["template"].pop("namespace", None)  # On-Premise only (webhooks-and-statuses §6)
        if callback_data is not None:
            body["biz_opaque_callback_data"] = check_callback_data(callback_data)
        return body

    async def block_users(self, users: Iterable[str] | str) -> BlockResult:
        """Block users (who must have written in the last 24 hours), 1,000 per request.

        Users that could not be blocked are in ``BlockResult.failed``; this does not raise for
        them.
        """
        return await block_in_batches(users, lambda chunk: self._block("POST", chunk))

    async def unblock_users(self, users: Iterable[str] | str) -> BlockResult:
        """Unblock users, 1,000 per request."""
        return await block_in_batches(users, lambda chunk: self._block("DELETE", chunk))

    async def _block(self, method: str, users: list[str]) -> BlockResult:
        body = {"messaging_product": "whatsapp", "block_users": [{"user": u} for u in users]}
        status, data = await self._request(method, "/block_users", body=body)
        parsed = structure_response(
            data, BlockResponse, status=status, request=f"{method} /block_users"
        )
        return parsed.block_users.result()

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
