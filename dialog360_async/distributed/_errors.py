"""Errors of the distributed extra; all are :class:`~dialog360_async.errors.Dialog360Error`."""

from __future__ import annotations

from ..errors import Dialog360Error

__all__ = [
    "CampaignLostError",
    "CampaignStalledError",
    "DistributedError",
    "RedisUnavailableError",
]


class DistributedError(Dialog360Error):
    """Base class of the errors of ``dialog360_async.distributed``."""


class RedisUnavailableError(DistributedError):
    """Redis cannot be reached when a command starts, or stayed unreachable for longer than
    the outage timeout.

    Raised before a send (the message was not sent) or by the producer and workers, which
    otherwise reconnect on their own. The message names the URL without its password.
    """


class CampaignLostError(DistributedError):
    """The campaign's state vanished from Redis (restarted without persistence, or flushed).

    Messages sent before it vanished cannot be told apart from the others any more, so nothing
    is re-enqueued: check the recipients before running the campaign again.
    """


class CampaignStalledError(DistributedError):
    """The campaign made no progress for ``stall_timeout`` seconds (are workers running?)."""
