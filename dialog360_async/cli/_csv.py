"""CSV broadcast lists: one location, one contact card or one template's variables per row.

The header line picks the layout and is checked strictly (unknown, missing and duplicate
columns); every row is validated by the models and reported as ``file:line: reason``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from .._models import Contact, ContactsMessage, Location, LocationMessage, Message, Name, Phone
from ._rows import InputError, Row
from ._send import TEMPLATE_LAYOUT, TemplateColumns

__all__ = ["csv_rows"]

_LOCATION_COLUMNS = ("to", "latitude", "longitude", "name", "address")
_CONTACT_COLUMNS = ("to", "formatted_name", "first_name", "last_name", "phone")
_LAYOUTS = (
    "expected to,latitude,longitude[,name,address] for locations, "
    "to,formatted_name[,first_name,last_name,phone] for contact cards, or with --template "
    f"{TEMPLATE_LAYOUT} for a template's variables, each with an optional key"
)


def _coordinate(row: dict[str, str | None], column: str) -> float:
    text = row.get(column) or ""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{column}: not a number: {text!r}") from None


def _csv_message(row: dict[str, str | None], contacts: bool) -> Message:
    to = row["to"] or ""
    if contacts:
        name = Name(
            formatted_name=row.get("formatted_name") or "",
            first_name=row.get("first_name"),
            last_name=row.get("last_name"),
        )
        phone = row.get("phone")
        card = Contact(name=name, phones=[Phone(phone=phone)] if phone else ())
        return ContactsMessage(to=to, contacts=[card])
    where = Location(
        latitude=_coordinate(row, "latitude"),
        longitude=_coordinate(row, "longitude"),
        name=row.get("name"),
        address=row.get("address"),
    )
    return LocationMessage(to=to, location=where)


def _csv_layout(header: list[str], source: str, line: int) -> bool:
    """Check the header; True for contact rows, False for location rows."""
    columns = set(header)
    contacts = "formatted_name" in columns
    allowed = {*(_CONTACT_COLUMNS if contacts else _LOCATION_COLUMNS), "key"}
    required = {"to", "formatted_name"} if contacts else {"to", "latitude", "longitude"}
    for problem, names in (
        ("unknown column", [c for c in header if c not in allowed]),
        ("missing column", sorted(required - columns)),
        ("duplicate column", sorted({c for c in header if header.count(c) > 1})),
    ):
        if names:
            raise InputError(source, line, f"{problem} {names[0]!r} ({_LAYOUTS})")
    return contacts


def _template_layout(header: list[str], columns: TemplateColumns, source: str, line: int) -> None:
    problem = columns.problem(header)
    if problem is not None:
        text, column = problem
        raise InputError(source, line, f"{text} {column!r} (expected {TEMPLATE_LAYOUT})")


def csv_rows(
    lines: Iterable[str], source: str, columns: TemplateColumns | None = None
) -> Iterator[Row]:
    """The rows of a CSV input (``source`` names it in errors), one message each.

    Raises:
        InputError: a bad header or row, with its line number.
    """
    reader = csv.reader(lines)
    for values in reader:  # the header is the first line that is not blank
        header = [c.strip().lower() for c in values]
        if any(header):
            break
    else:
        return  # no messages: MessageSource.validate says so, as for an empty JSONL file
    contacts = False
    if columns is None:
        contacts = _csv_layout(header, source, reader.line_num)
    else:
        _template_layout(header, columns, source, reader.line_num)
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        number = reader.line_num
        if len(values) != len(header):
            raise InputError(source, number, f"expected {len(header)} fields, got {len(values)}")
        row = {c: (v.strip() or None) for c, v in zip(header, values, strict=True)}
        try:
            message = _csv_message(row, contacts) if columns is None else columns.message(row)
        except ValueError as exc:  # ValidationError is a ValueError too
            raise InputError(source, number, str(exc)) from None
        yield Row(number, message, row.get("key"))
