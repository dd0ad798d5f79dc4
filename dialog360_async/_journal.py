"""What the bulk sender records its sends in, so that a broadcast is resumable and a message is
never sent twice: the :class:`Ledger` protocol, and the error a journal that cannot keep its
records raises. Practice: ../shared/docs/reliability-notes.md §3 "Resumable journal".
"""

from __future__ import annotations

import secrets
import time
from typing import Literal, Protocol

from .errors import Dialog360Error, ValidationError

__all__ = ["JournalError", "Ledger", "State", "check_name", "new_campaign"]

State = Literal["attempting", "sent", "failed", "unknown", "cancelled"]


class JournalError(Dialog360Error):
    """The journal cannot be used or cannot keep a record: it is in use by another sender,
    it is not a broadcast store, or a write failed (disk full, I/O error).

    A message whose record could not be written is not sent.
    """


class Ledger(Protocol):
    """Where the bulk sender records what it sends, so a message is never sent twice.

    :class:`~dialog360_async.BroadcastStore` is one; the distributed extra keeps one in Redis
    for many workers. A ledger that also tracks delivery may have ``callback_for(key) -> str |
    None``: the callback tag the Cloud send of a claimed key carries, so that its status
    webhooks name it even when the send's answer is lost.
    """

    async def claim(self, key: str) -> str | None:
        """Reserve ``key`` for one send attempt.

        Returns:
            None to go ahead; ``"sent"`` if it was sent already (skip it); ``"duplicate"`` if
            this run already claimed it (a repeated key: fail it, never send it); any other
            state if it is in doubt (report it ``unknown``, never resend it blindly).

        Raises:
            JournalError: the claim could not be recorded; the message must not be sent.
        """
        ...

    async def settle(
        self, key: str, state: State, *, message_id: str | None = None, code: int | None = None
    ) -> None:
        """Record the outcome of a claimed key; ``"cancelled"`` and ``"failed"`` free it."""
        ...

    async def close(self) -> None:
        """Flush and release."""
        ...


def new_campaign() -> str:
    """A campaign name from the current UTC time, e.g. ``20261201-093000-a1b2``."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def check_name(value: object, field: str) -> str:
    """A key or campaign name: a non-empty string of printable characters."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValidationError(field, f"must be a non-empty printable string, got {value!r}")
    return value
