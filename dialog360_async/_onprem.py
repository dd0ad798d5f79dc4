"""OnPremiseClient: the deprecated On-Premise API (``/v1/...``), still served by 360dialog.

Wire formats: ../shared/docs/360dialog-api.md §2.2, §2.4, §2.8. Meta stopped supporting
On-Premise in October 2025; prefer Dialog360Client for new work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

from . import _validation as v
from ._base import MessagingClient
from ._converter import structure_response, unstructure
from ._gate import halts_channel
from ._models import Message
from ._results import (
    BlocklistPage,
    BlockResult,
    ContactStatus,
    ErrorDetail,
    FailedUser,
    UserRef,
)
from ._wire import BlocklistResponse, ContactsResponse
from .errors import APIError, RateLimitError, ServerError, ValidationError

__all__ = ["DEFAULT_ON_PREMISE_URL", "OnPremiseClient"]

DEFAULT_ON_PREMISE_URL = "https://waba.360dialog.io"


def _fails_whole_call(error: APIError) -> bool:
    # These concern the key, the rate, the server or the channel, not the one user: every later
    # request would fail the same way, so the loop stops and raises (design.md, hardening).
    return halts_channel(error) or isinstance(error, RateLimitError | ServerError)


class OnPremiseClient(MessagingClient):
    """Client of the 360dialog On-Premise API for one channel.

    Takes the same arguments as :class:`Dialog360Client` (one key is one channel: a Cloud and
    an On-Premise client of a key share its rate limiter); ``base_url`` defaults to
    ``https://waba.360dialog.io``. Sends refuse ``callback_data`` (On-Premise has no such
    field). Per-user block and unblock failures (e.g. 2048, not engaged) land in
    ``BlockResult.failed``; they do not raise. An error that would fail every later user too
    (401, 403, a disabled channel, an exhausted rate limit or server error, a transport error)
    stops the loop at once and is raised.
    """

    __slots__ = ()
    DEFAULT_URL = DEFAULT_ON_PREMISE_URL
    _messages_path = "/v1/messages"

    def _message_body(self, message: Message, callback_data: str | None) -> dict[str, Any]:
        if callback_data is not None:
            # The field came after On-Premise's feature freeze (webhooks-and-statuses.md §3):
            # sent anyway, it would be dropped and no status would ever carry it.
            raise ValidationError(
                "callback_data",
                "is not supported by the On-Premise API (no biz_opaque_callback_data): use "
                "Dialog360Client, or match statuses by message id",
            )
        body = unstructure(message)
        if message.type == "template":
            template = body["template"]
            if "namespace" not in template:
                raise ValidationError(
                    "Template.namespace",
                    "is required by the On-Premise API (the template namespace of the account)",
                )
            template["language"] = {"policy": "deterministic", "code": template["language"]["code"]}
        return body

    async def block_users(
        self, users: Iterable[str] | str, *, reason: str | None = None
    ) -> BlockResult:
        """Block users one request each; ``reason`` must be shorter than 60 characters."""
        checked = v.recipients(users)
        body = {} if v.reason(reason) is None else {"reason": reason}

        async def block(user: str) -> None:
            await self._request("POST", f"/v1/contacts/{_path(user)}/block", body=body)

        added, failed = await _per_user(checked, block)
        return BlockResult(added=added, failed=failed)

    async def unblock_users(self, users: Iterable[str] | str) -> BlockResult:
        """Unblock users one request each."""

        async def unblock(user: str) -> None:
            await self._request("POST", f"/v1/contacts/{_path(user)}/unblock")

        removed, failed = await _per_user(v.recipients(users), unblock)
        return BlockResult(removed=removed, failed=failed)

    async def get_blocklist(self, limit: int = 100, offset: int = 0) -> BlocklistPage:
        """One page of the blocklist; ``limit`` in 1..200."""
        v.blocklist_window(limit, offset)
        params = {"limit": str(limit), "offset": str(offset)}
        status, data = await self._request("GET", "/v1/contacts/blocklist", params=params)
        return structure_response(
            data, BlocklistResponse, status=status, request="GET /v1/contacts/blocklist"
        ).result()

    async def list_blocked_users(self) -> AsyncIterator[UserRef]:
        """Every blocked user, paging through the blocklist 200 at a time."""
        offset = 0
        while True:
            page = await self.get_blocklist(limit=200, offset=offset)
            for wa_id in page.wa_ids:
                yield UserRef(wa_id=wa_id)
            offset += len(page.wa_ids)
            if not page.wa_ids or offset >= page.total:
                return

    async def report_user(
        self,
        user: str,
        *,
        reason: str | None = None,
        block: bool = False,
        message_id: str | None = None,
    ) -> None:
        """Report a user to WhatsApp (and block them too with ``block=True``).

        Without ``message_id`` WhatsApp receives the user's last 5 messages.

        Raises:
            NotEngagedError: the user has not written in the last 24 hours (2048).
        """
        checked = v.recipient(user, "user")
        body: dict[str, Any] = {"block": v.flag(block, "block")}
        if v.reason(reason) is not None:
            body["reason"] = reason
        if message_id is not None:
            if not isinstance(message_id, str) or not message_id:
                raise ValidationError(
                    "message_id", f"must be a non-empty string, got {v.shown(message_id)}"
                )
            body["message_id"] = v.text(message_id, "message_id")
        # Not idempotent: a second report after an ambiguous failure could file it twice.
        await self._request(
            "POST", f"/v1/contacts/{_path(checked)}/report", body=body, idempotent=False
        )

    async def check_contacts(
        self, contacts: Iterable[str] | str, *, wait: bool = True, force_check: bool = False
    ) -> list[ContactStatus]:
        """Look up wa_ids. Since On-Premise v2.39 every number reports ``"valid"``: don't rely
        on it to decide whether a number uses WhatsApp."""
        checked = v.recipients(contacts, "contacts")
        body = {
            "blocking": "wait" if v.flag(wait, "wait") else "no_wait",
            "contacts": checked,
            "force_check": v.flag(force_check, "force_check"),
        }
        status, data = await self._request("POST", "/v1/contacts", body=body)
        return list(
            structure_response(
                data, ContactsResponse, status=status, request="POST /v1/contacts"
            ).contacts
        )


async def _per_user(
    users: list[str], call: Callable[[str], Awaitable[None]]
) -> tuple[tuple[UserRef, ...], tuple[FailedUser, ...]]:
    # One request at a time: the first error that fails every later request (a revoked key,
    # a disabled channel, a closed client) stops the loop, so it is the last request sent.
    done: list[UserRef] = []
    failed: list[FailedUser] = []
    for user in users:
        try:
            await call(user)
        except APIError as error:
            if _fails_whole_call(error):
                raise
            detail = ErrorDetail(code=error.code, message=error.message, details=error.details)
            failed.append(FailedUser(input=user, errors=(detail,)))
        else:
            done.append(UserRef(input=user))
    return tuple(done), tuple(failed)


def _path(user: str) -> str:
    return quote(user, safe="+")
