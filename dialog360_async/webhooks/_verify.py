"""Who may post webhooks: configured headers and ``x-360dialog-signature``, in constant time.

360dialog does not forward Meta's ``X-Hub-Signature-256``; it sends the custom headers set with
the webhook URL and, to partner URLs, an HMAC-SHA256 of the raw body, seen both as bare hex and
as ``sha256=<hex>`` (../shared/docs/webhooks-and-statuses.md §2.3).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from .._secret import Secret
from ..errors import ValidationError

__all__ = ["SIGNATURE_HEADER", "Verifier", "wrap", "wrap_headers"]

SIGNATURE_HEADER = "x-360dialog-signature"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name
_VALUE = re.compile(r"[^\x00-\x1f\x7f]+")  # printable
_INVALID = object()  # stands for a value that is neither str nor Secret (it is not kept)

Headers = tuple[tuple[object, object], ...] | None


def wrap(value: object) -> object:
    """``value`` as a Secret at once, before anything can fail: error trackers record the
    locals of every frame of a traceback, so no frame may hold a plain secret."""
    if isinstance(value, str):
        return Secret(value)
    return value if value is None or isinstance(value, Secret) else _INVALID


def wrap_headers(auth_headers: object) -> Headers:
    """Each header value wrapped as by :func:`wrap`; None when it is not a mapping at all."""
    if auth_headers is None:
        return ()
    if not isinstance(auth_headers, Mapping):
        return None
    return tuple((name, wrap(value)) for name, value in auth_headers.items())


def _check(field: str, value: object) -> Secret:
    if not isinstance(value, Secret):
        raise ValidationError(field, "must be a str or a Secret")
    if not _printable(value):
        raise ValidationError(
            field, "must be non-empty, printable, without leading or trailing whitespace"
        )
    return value


def _printable(value: Secret) -> bool:
    # No local holds the plain text; outer whitespace could never match (aiohttp strips it).
    return bool(_VALUE.fullmatch(value.reveal())) and value.reveal() == value.reveal().strip()


class Verifier:
    """Checks a request's headers and body against the configured secrets."""

    __slots__ = ("headers", "signature")

    def __init__(self, headers: tuple[tuple[str, Secret], ...], signature: Secret | None) -> None:
        self.headers = headers
        """``(name, value)`` pairs every request must carry."""
        self.signature = signature
        """The platform secret, when every request must be signed."""

    @classmethod
    def checked(cls, auth_headers: Headers, signature_secret: object) -> Verifier:
        """Validate what :func:`wrap_headers` and :func:`wrap` made (no plain secrets)."""
        if auth_headers is None:
            raise ValidationError("WebhookReceiver.auth_headers", "must be a mapping")
        headers: list[tuple[str, Secret]] = []
        for name, value in auth_headers:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ValidationError(
                    "WebhookReceiver.auth_headers", "header names must be HTTP tokens"
                )
            headers.append((name, _check(f"WebhookReceiver.auth_headers[{name!r}]", value)))
        signature = (
            None
            if signature_secret is None
            else _check("WebhookReceiver.signature_secret", signature_secret)
        )
        return cls(tuple(headers), signature)

    def __repr__(self) -> str:
        names = [name for name, _ in self.headers]
        return f"Verifier(auth_headers={names!r}, signature={self.signature is not None})"

    def headers_ok(self, given: Mapping[str, str]) -> bool:
        """Every configured header present with its exact value (each compared in full)."""
        ok = True
        for name, expected in self.headers:
            value = given.get(name)
            if value is None or not hmac.compare_digest(
                value.encode("utf-8", "surrogateescape"), expected.reveal().encode()
            ):
                ok = False
        return ok

    def signature_ok(self, header: str | None, body: bytes) -> bool:
        """``header`` is the body's HMAC-SHA256 under the secret, hex, ``sha256=`` optional."""
        if header is None or self.signature is None:
            return False
        digest = header.strip()
        if digest[:7].lower() == "sha256=":
            digest = digest[7:]
        expected = hmac.digest(self.signature.reveal().encode(), body, "sha256").hex()
        return hmac.compare_digest(expected.encode(), digest.lower().encode("ascii", "replace"))
