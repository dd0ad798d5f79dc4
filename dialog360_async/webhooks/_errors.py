"""The one error this subpackage raises."""

from __future__ import annotations

from ..errors import Dialog360Error

__all__ = ["WebhookError"]


class WebhookError(Dialog360Error, ValueError):
    """A body that is no webhook at all: not JSON, not an object, or neither API's shape."""
