"""Input rules shared by models and clients; each raises ValidationError before any I/O.

Rules and their sources: ../shared/docs/360dialog-api.md §5 (client-side validation rules).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable
from numbers import Real

from .errors import ValidationError

__all__ = [
    "MAX_BLOCK_BATCH",
    "birthday",
    "blocklist_window",
    "coordinate",
    "reason",
    "recipient",
    "recipients",
]

MAX_BLOCK_BATCH = 1000  # Meta block-users: at most 1,000 users per request

# A phone number in any common notation, or a wa_id (digits only).
_PHONE_CHARS = re.compile(r"\+?[0-9 ()\-.]+")
_DROP = str.maketrans("", "", " ()-.")


def recipient(value: object, field: str = "to") -> str:
    """Normalize a phone number or wa_id to ``+``-optional digits; reject anything else."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a phone number or wa_id string, got {value!r}")
    text = value.strip()
    if not _PHONE_CHARS.fullmatch(text):
        raise ValidationError(
            field,
            f"must be a phone number (digits, optional +, spaces, dashes, brackets) "
            f"or a wa_id, got {value!r}",
        )
    normalized = text.translate(_DROP)
    digits = len(normalized) - normalized.startswith("+")
    if not 5 <= digits <= 20:
        raise ValidationError(field, f"must have 5 to 20 digits, got {digits} in {value!r}")
    return normalized


def recipients(values: Iterable[str] | str, field: str = "users") -> list[str]:
    """Validate a non-empty collection of recipients (a lone string is one recipient)."""
    if isinstance(values, str):
        values = [values]
    out = [recipient(v, f"{field}[{i}]") for i, v in enumerate(values)]
    if not out:
        raise ValidationError(field, "must name at least one user")
    return out


def coordinate(value: object, field: str, bound: float) -> float:
    """A finite number of decimal degrees within ``[-bound, bound]``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValidationError(field, f"must be a number of decimal degrees, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise ValidationError(
            field, f"must be a finite number in [-{bound:g}, {bound:g}], got {value!r}"
        )
    return number


def birthday(value: object) -> str | None:
    """A real calendar date as ``YYYY-MM-DD`` (a ``datetime.date`` is formatted for you)."""
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise ValidationError("Contact.birthday", f"must be a real date as YYYY-MM-DD, got {value!r}")


def reason(value: str | None, field: str = "reason") -> str | None:
    """360dialog: a block or report reason "must be less than 60 characters"."""
    if value is not None and (not isinstance(value, str) or len(value) >= 60):
        raise ValidationError(field, f"must be a string shorter than 60 characters, got {value!r}")
    return value


def blocklist_window(limit: int, offset: int) -> None:
    """On-Premise blocklist paging: ``limit`` in 1..200, ``offset`` >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise ValidationError("limit", f"must be an integer in 1..200, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationError("offset", f"must be an integer >= 0, got {offset!r}")
