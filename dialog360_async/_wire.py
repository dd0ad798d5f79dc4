"""Response bodies exactly as they arrive, before they become public results.

Shapes: ../shared/docs/360dialog-api.md §2 (Cloud block_users lists come in a 360dialog shape,
``data[].block_users[]``, and a Meta shape, ``data[]{wa_id}``; both are accepted).
"""

from __future__ import annotations

from typing import Any

import attrs

from ._results import BlocklistPage, BlockResult, ContactStatus, FailedUser, SentMessage, UserRef


def _message_id(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    # The converter turns a null id into the string "None": a wamid must come as a string.
    if type(value) is not str or not value:
        raise ValueError(f"messages[0].id must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class MessageId:
    id: str = attrs.field(validator=_message_id)
    message_status: str | None = None


@attrs.frozen(kw_only=True)
class SendResponse:
    messages: tuple[MessageId, ...] = attrs.field(validator=attrs.validators.min_len(1))
    contacts: tuple[UserRef, ...] = ()

    def result(self) -> SentMessage:
        first = self.messages[0]
        contact = self.contacts[0] if self.contacts else UserRef()
        return SentMessage(
            message_id=first.id,
            input=contact.input,
            wa_id=contact.wa_id,
            message_status=first.message_status,
        )


def sent_message(data: Any) -> SentMessage | None:
    """A send's answer as a SentMessage, or None when it is no success: no ``messages[0].id``
    that is a non-empty string, or fields of the wrong type. Every send goes through here."""
    if type(data) is not dict:
        return None
    messages = data.get("messages")
    if type(messages) is not list or not messages or type(messages[0]) is not dict:
        return None
    first = messages[0]
    message_id = first.get("id")
    status = first.get("message_status")
    if type(message_id) is not str or not message_id or not (status is None or type(status) is str):
        return None
    contacts = data.get("contacts")
    contact_input = wa_id = None
    if contacts is not None:
        if type(contacts) is not list or (contacts and type(contacts[0]) is not dict):
            return None
        if contacts:
            contact_input, wa_id = contacts[0].get("input"), contacts[0].get("wa_id")
            if not (contact_input is None or type(contact_input) is str) or not (
                wa_id is None or type(wa_id) is str
            ):
                return None
    return SentMessage(
        message_id=message_id, input=contact_input, wa_id=wa_id, message_status=status
    )


@attrs.frozen(kw_only=True)
class BlockUsers:
    added_users: tuple[UserRef, ...] = ()
    removed_users: tuple[UserRef, ...] = ()
    failed_users: tuple[FailedUser, ...] = ()

    def result(self) -> BlockResult:
        return BlockResult(
            added=self.added_users, removed=self.removed_users, failed=self.failed_users
        )


@attrs.frozen(kw_only=True)
class BlockResponse:
    block_users: BlockUsers


@attrs.frozen(kw_only=True)
class ListItem:
    # 360dialog shape: {"block_users": [...]}; Meta shape: {"messaging_product", "wa_id"}.
    block_users: tuple[UserRef, ...] = ()
    input: str | None = None
    wa_id: str | None = None

    def users(self) -> tuple[UserRef, ...]:
        if self.wa_id is not None or self.input is not None:
            return (UserRef(input=self.input, wa_id=self.wa_id), *self.block_users)
        return self.block_users


@attrs.frozen(kw_only=True)
class Cursors:
    after: str | None = None
    before: str | None = None


@attrs.frozen(kw_only=True)
class Paging:
    cursors: Cursors | None = None
    next: str | None = None


@attrs.frozen(kw_only=True)
class ListResponse:
    data: tuple[ListItem, ...] = ()
    paging: Paging | None = None

    def next_cursor(self) -> str | None:
        # Graph API convention: `next` is present only while there are more pages.
        if self.paging is None or not self.paging.next or self.paging.cursors is None:
            return None
        return self.paging.cursors.after


@attrs.frozen(kw_only=True)
class BlockedContact:
    wa_id: str


@attrs.frozen(kw_only=True)
class Pagination:
    limit: int
    offset: int
    total: int


_SUFFIX = "@s.whatsapp.net"


@attrs.frozen(kw_only=True)
class BlocklistResponse:
    pagination: Pagination
    contacts: tuple[BlockedContact, ...] = ()

    def result(self) -> BlocklistPage:
        return BlocklistPage(
            wa_ids=tuple(c.wa_id.removesuffix(_SUFFIX) for c in self.contacts),
            limit=self.pagination.limit,
            offset=self.pagination.offset,
            total=self.pagination.total,
        )


@attrs.frozen(kw_only=True)
class ContactsResponse:
    contacts: tuple[ContactStatus, ...] = ()


@attrs.frozen(kw_only=True)
class PartnerBlockData:
    block_users: BlockUsers = BlockUsers()


@attrs.frozen(kw_only=True)
class PartnerBlockEnvelope:
    data: PartnerBlockData


@attrs.frozen(kw_only=True)
class PartnerListData:
    block_users: tuple[UserRef, ...] = ()


@attrs.frozen(kw_only=True)
class PartnerListEnvelope:
    data: PartnerListData
