"""Input rules shared by models and clients; each raises ValidationError before any I/O.

Rules and their sources: ../shared/docs/360dialog-api.md §5 (client-side validation rules).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable
from numbers import Real
from typing import Any, TypeVar

from .errors import ValidationError

__all__ = [
    "MAX_BLOCK_BATCH",
    "birthday",
    "blocklist_window",
    "coordinate",
    "finite",
    "flag",
    "function",
    "reason",
    "recipient",
    "recipients",
    "shown",
    "text",
    "token",
    "token_rule",
]

_F = TypeVar("_F", bound=Callable[..., Any])

MAX_BLOCK_BATCH = 1000  # Meta block-users: at most 1,000 users per request

# A phone number in any common notation, or a wa_id (digits only).
_PHONE_CHARS = re.compile(r"\+?[0-9 ()\-.]+")
_DROP = str.maketrans("", "", " ()-.")
# Unicode's control characters (C0, DEL, C1; \r \n \x00 among them) and lone surrogates: in a
# header they split or corrupt the request (aiohttp refuses only \r and \n, at send time).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SHOWN_MAX = 80
_MAX_OFFSET = 2**31 - 1  # a blocklist holds at most 64k users; this bounds str(offset)


def shown(value: object) -> str:
    """``repr(value)`` for an error message: bounded, and never raising itself.

    ``repr`` of an int past ``sys.get_int_max_str_digits()`` raises ValueError, and a huge
    value would make a huge message.
    """
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= _SHOWN_MAX else f"{text[:_SHOWN_MAX]}... ({len(text)} chars)"


def text(value: object, field: str) -> str:
    """A string that can be sent: JSON encoders refuse lone surrogates (``"\\ud800"``)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {shown(value)}")
    # Only non-ASCII text can hold a surrogate; isascii() is O(1), encode() one pass in C.
    if not str.isascii(value):
        try:
            str.encode(value, "utf-8")
        except UnicodeEncodeError as exc:
            at = exc.start
        else:
            return value
        raise ValidationError(
            field, f"must not contain a lone surrogate (U+{ord(value[at]):04X} at index {at})"
        )
    return value


def token_rule(value: object) -> str | None:
    """The rule an API key, token, id or header value breaks, or None if it is fine.

    A non-empty string without control characters. The rule never shows the value (it may be a
    key), only the offending character; returning it lets the caller drop its reference to the
    key before raising, so that no frame of the traceback holds it (Sentry records locals).
    """
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {type(value).__name__}"
    found = _UNSAFE.search(value)
    if found is None:
        return None
    return (
        f"must not contain control characters or lone surrogates "
        f"(U+{ord(found.group()):04X} at index {found.start()})"
    )


def token(value: object, field: str) -> str:
    """``value`` if it passes :func:`token_rule`; else a ValidationError raised without it."""
    rule = token_rule(value)
    if rule is None and isinstance(value, str):
        return value
    del value
    raise ValidationError(field, str(rule))


def flag(value: object, field: str) -> bool:
    """True or False, nothing merely truthy (``block="no"`` would block)."""
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be True or False, got {shown(value)}")
    return value


def function(value: _F, field: str) -> _F:
    """Something callable: an injected clock, sleep or random source."""
    if not callable(value):
        raise ValidationError(field, f"must be callable, got {shown(value)}")
    return value


def finite(value: object, field: str, kind: str = "number") -> float:
    """A real number (not a bool) that is a finite float: no inf, nan, or int beyond 1.8e308."""
    if isinstance(value, float):
        number = value
    elif type(value) is int or (not isinstance(value, bool) and isinstance(value, Real)):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            number = math.nan  # 10**400, or a Real whose __float__ fails: not finite
    else:
        raise ValidationError(field, f"must be a {kind}, got {shown(value)}")
    if not math.isfinite(number):
        raise ValidationError(field, f"must be a finite {kind}, got {shown(value)}")
    return number


def recipient(value: object, field: str = "to") -> str:
    """Normalize a phone number or wa_id to ``+``-optional digits; reject anything else."""
    if type(value) is str and value.isascii():
        # Already normalized, as most are: "+" then 5 to 20 ASCII digits is the rule's result.
        number = value[1:] if value[:1] == "+" else value
        if number.isdigit() and 5 <= len(number) <= 20:
            return value
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a phone number or wa_id string, got {shown(value)}")
    stripped = value.strip()
    if not _PHONE_CHARS.fullmatch(stripped):
        raise ValidationError(
            field,
            f"must be a phone number (digits, optional +, spaces, dashes, brackets) "
            f"or a wa_id, got {shown(value)}",
        )
    normalized = stripped.translate(_DROP)
    digits = len(normalized) - normalized.startswith("+")
    if not 5 <= digits <= 20:
        raise ValidationError(field, f"must have 5 to 20 digits, got {digits} in {shown(value)}")
    return normalized


def recipients(values: Iterable[str] | str, field: str = "users") -> list[str]:
    """Validate a non-empty collection of recipients (a lone string is one recipient)."""
    if isinstance(values, str):
        values = [values]
    elif isinstance(values, bytes | dict) or not isinstance(values, Iterable):
        raise ValidationError(
            field, f"must be a phone number or a list of them, got {shown(values)}"
        )
    out = [recipient(v, f"{field}[{i}]") for i, v in enumerate(values)]
    if not out:
        raise ValidationError(field, "must name at least one user")
    return out


def coordinate(value: object, field: str, bound: float) -> float:
    """A finite number of decimal degrees within ``[-bound, bound]``."""
    number = finite(value, field, "number of decimal degrees")
    if not -bound <= number <= bound:
        raise ValidationError(
            field, f"must be a finite number in [-{bound:g}, {bound:g}], got {shown(value)}"
        )
    return number


def birthday(value: object) -> str | None:
    """A real calendar date as ``YYYY-MM-DD`` (a ``datetime.date`` is formatted for you)."""
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    # The shape YYYY-MM-DD; fromisoformat then takes only ASCII digits in the other eight
    # places (and refuses the week form, "2020-W01-1"). Half the cost of a regex.
    if (
        isinstance(value, str)
        and len(value) == 10
        and value[4] == value[7] == "-"
        and value.isascii()
        and value[:4].isdigit()
    ):
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise ValidationError(
        "Contact.birthday", f"must be a real date as YYYY-MM-DD, got {shown(value)}"
    )


def reason(value: str | None, field: str = "reason") -> str | None:
    """360dialog: a block or report reason "must be less than 60 characters"."""
    if value is not None and (not isinstance(value, str) or len(value) >= 60):
        raise ValidationError(
            field, f"must be a string shorter than 60 characters, got {shown(value)}"
        )
    return value if value is None else text(value, field)


def blocklist_window(limit: int, offset: int) -> None:
    """On-Premise blocklist paging: ``limit`` in 1..200, ``offset`` >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise ValidationError("limit", f"must be an integer in 1..200, got {shown(limit)}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _MAX_OFFSET:
        raise ValidationError(
            "offset", f"must be an integer in 0..{_MAX_OFFSET}, got {shown(offset)}"
        )
