"""What the endpoints return: plain frozen records, tolerant of fields the API adds later."""

from __future__ import annotations

import attrs

from ._models import fast_init

__all__ = [
    "BlockResult",
    "BlocklistPage",
    "ContactStatus",
    "ErrorDetail",
    "FailedUser",
    "SentMessage",
    "UserRef",
]


@fast_init  # built for every message sent
@attrs.frozen(kw_only=True)
class SentMessage:
    """A message the API accepted. Delivery is reported later, through webhooks."""

    message_id: str
    """The ``wamid.…`` id; match it against webhook statuses."""
    input: str | None = None
    """The recipient as sent (Cloud API only)."""
    wa_id: str | None = None
    """The recipient's WhatsApp id (Cloud API only)."""
    message_status: str | None = None
    """``"accepted"`` and the like, when Meta includes it."""


@attrs.frozen(kw_only=True)
class UserRef:
    """A user as the API echoes it: the ``input`` you sent and the resolved ``wa_id``."""

    input: str | None = None
    wa_id: str | None = None


@attrs.frozen(kw_only=True)
class ErrorDetail:
    """One error attached to one user in a block/unblock result."""

    code: int | None = None
    message: str | None = None
    details: str | None = None


@attrs.frozen(kw_only=True)
class FailedUser:
    """A user the API could not block or unblock, with the reasons."""

    input: str | None = None
    wa_id: str | None = None
    errors: tuple[ErrorDetail, ...] = ()


@attrs.frozen(kw_only=True)
class BlockResult:
    """The outcome of a block or unblock call, user by user.

    A partial failure (HTTP 400 with error 139100) is a result, not an exception: the users
    that failed are in ``failed`` with their error codes.
    """

    added: tuple[UserRef, ...] = ()
    removed: tuple[UserRef, ...] = ()
    failed: tuple[FailedUser, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no user failed."""
        return not self.failed

    def __add__(self, other: BlockResult) -> BlockResult:
        return BlockResult(
            added=self.added + other.added,
            removed=self.removed + other.removed,
            failed=self.failed + other.failed,
        )


@attrs.frozen(kw_only=True)
class BlocklistPage:
    """One page of the On-Premise blocklist (``@s.whatsapp.net`` already stripped)."""

    wa_ids: tuple[str, ...]
    limit: int
    offset: int
    total: int


@attrs.frozen(kw_only=True)
class ContactStatus:
    """On-Premise contact check result. Since v2.39 ``status`` is always ``"valid"``."""

    input: str
    status: str
    wa_id: str | None = None
