"""Input files of the ``dialog360`` tool: contact cards and broadcast lists (JSONL or CSV).

Everything is checked strictly against the wire shape (unknown keys, wrong types, missing fields)
before the models validate their values, so a typo in line 9,000 is reported as
``file:9000: reason`` instead of being dropped or coerced silently. A broadcast's keys are
checked for repeats too, in a temporary SQLite table so that memory stays flat.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

import attrs
import cattrs

from .._bulk import message_key
from .._converter import structure
from .._models import (
    MESSAGE_KINDS,
    Contact,
    ContactsMessage,
    Location,
    LocationMessage,
    Message,
    Name,
    Phone,
)
from ..errors import ValidationError

__all__ = ["InputError", "MessageSource", "Row", "UsageError", "load_contacts", "parse_contacts"]

# Wire keys a message line may carry besides its payload; "key" is the journal key.
_MESSAGE_EXTRAS = frozenset({"key", "type", "messaging_product", "recipient_type"})
_LOCATION_COLUMNS = ("to", "latitude", "longitude", "name", "address")
_CONTACT_COLUMNS = ("to", "formatted_name", "first_name", "last_name", "phone")
_LAYOUTS = (
    "expected to,latitude,longitude[,name,address] for locations or "
    "to,formatted_name[,first_name,last_name,phone] for contact cards, each with an optional key"
)
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


class UsageError(Exception):
    """Bad usage: the command line reports it with exit status 2."""


class InputError(Exception):
    """A bad input line, shown as ``source:line: reason``."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


class Row(NamedTuple):
    """One validated input line: its number, the message and its journal key, if given."""

    line: int
    message: Message
    key: str | None

    @property
    def journal_key(self) -> str:
        """The key a run records the message under: the given one, else :func:`message_key`."""
        return self.key or message_key(self.message)


def _open(path: str, name: str) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(name, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(name, None, "is a directory, not a file") from None


# -- strict wire-shape check ----------------------------------------------------------------


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _check(value: Any, hint: Any, path: str) -> None:
    """Raise ValueError(``path: reason``) unless ``value`` has the JSON shape of ``hint``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is not None:
            _check(value, options[0], path)
        return
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path}: must be a list, got {_kind(value)}")
        for i, item in enumerate(value):
            _check(item, typing.get_args(hint)[0], f"{path}[{i}]")
        return
    if attrs.has(hint):
        _check_object(value, hint, path)
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{path}: must be a number, got {_kind(value)}")
    elif hint is str and not isinstance(value, str):
        raise ValueError(f"{path}: must be a string, got {_kind(value)}")


def _check_object(
    value: Any, cls: type[Any], path: str, extras: frozenset[str] = frozenset()
) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: must be an object, got {_kind(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls) if f.init}
    unknown = [name for name in value if name not in fields and name not in extras]
    for name, field in fields.items():
        if name in value:
            _check(value[name], hints[name], f"{path}.{name}")
        elif field.default is attrs.NOTHING:
            # A misspelt key shows up as both; naming the two says what to fix.
            hint = f" (unknown key {unknown[0]!r})" if unknown else ""
            raise ValueError(f"{path}: missing {name!r}{hint}")
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}")


def _model_error(exc: BaseException) -> str:
    """The first model rule a structuring error broke, in one line."""
    if isinstance(exc, ValidationError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _model_error(inner)
            if found:
                return found
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return ""


def _build(data: Any, cls: type[Any], path: str) -> Any:
    _check_object(data, cls, path, _MESSAGE_EXTRAS if path == "$" else frozenset())
    try:
        return structure(data, cls)
    except (ValidationError, cattrs.BaseValidationError) as exc:
        raise ValueError(_model_error(exc) or type(exc).__name__) from None


def parse_contacts(data: Any) -> list[Contact]:
    """Contact cards from decoded JSON: one contact object or a list of them.

    Raises:
        ValueError: the shape or a value is wrong; the text says where.
    """
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ValueError("$: needs at least one contact")
    return [
        _build(item, Contact, "$" if item is data else f"$[{i}]") for i, item in enumerate(items)
    ]


def load_contacts(path: str) -> list[Contact]:
    """Read ``send-contacts --file``: one contact object or a list, as JSON (``-`` = stdin).

    Raises:
        InputError: the file is missing, not JSON, or not contacts in the wire shape.
        OSError: the file cannot be read.
    """
    name = "<stdin>" if path == "-" else path
    if path == "-":
        text = sys.stdin.read()
    else:
        with _open(path, name) as file:
            text = file.read()
    try:
        return parse_contacts(json.loads(text))
    except json.JSONDecodeError as exc:
        raise InputError(name, exc.lineno, f"not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise InputError(name, None, str(exc)) from None


# -- JSONL ----------------------------------------------------------------------------------


def _message(data: Any) -> tuple[Message, str | None]:
    if not isinstance(data, dict):
        raise ValueError(f"a message must be a JSON object, got {_kind(data)}")
    kind = data.get("type")
    if kind is None:
        # The payload key names the type unambiguously; only "type" itself is optional.
        kind = next((name for name in MESSAGE_KINDS if name in data), None)
    key = data.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"$.key: must be a non-empty string, got {key!r}")
    if kind == "location":
        return _build(data, LocationMessage, "$"), key
    if kind == "contacts":
        return _build(data, ContactsMessage, "$"), key
    if kind in ("text", "template"):
        # Their wire shape nests what the models hold flat: the converter checks it strictly.
        wire = {name: value for name, value in data.items() if name not in _MESSAGE_EXTRAS}
        try:
            return structure({**wire, "type": kind}, MESSAGE_KINDS[kind]), key
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(f'$.type: must be "location", "contacts", "text" or "template", got {kind!r}')


def _jsonl_rows(lines: Iterable[str], source: str) -> Iterator[Row]:
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(source, number, f"not valid JSON: {exc.msg}") from None
        try:
            message, key = _message(data)
        except ValueError as exc:
            raise InputError(source, number, str(exc)) from None
        yield Row(number, message, key)


# -- CSV ------------------------------------------------------------------------------------


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


def _csv_rows(lines: Iterable[str], source: str) -> Iterator[Row]:
    reader = csv.reader(lines)
    for values in reader:  # the header is the first line that is not blank
        header = [c.strip().lower() for c in values]
        if any(header):
            break
    else:
        return  # no messages: MessageSource.validate says so, as for an empty JSONL file
    contacts = _csv_layout(header, source, reader.line_num)
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        number = reader.line_num
        if len(values) != len(header):
            raise InputError(source, number, f"expected {len(header)} fields, got {len(values)}")
        row = {c: (v.strip() or None) for c, v in zip(header, values, strict=True)}
        try:
            message = _csv_message(row, contacts)
        except ValueError as exc:  # ValidationError is a ValueError too
            raise InputError(source, number, str(exc)) from None
        yield Row(number, message, row.get("key"))


# -- the source of a broadcast --------------------------------------------------------------

# Every line after the first of its key, with that first line, in line order.
_REPEATS = """
SELECT line, first FROM (SELECT line, min(line) OVER (PARTITION BY key) AS first FROM keys)
WHERE line > first ORDER BY line
"""


def _tee(lines: Iterable[str], copy: IO[str]) -> Iterator[str]:
    for line in lines:
        copy.write(line)
        yield line


def _record_keys(db: sqlite3.Connection, rows: Iterable[Row]) -> int:
    """Store every row's key and line number in table ``keys``; returns the row count."""
    count = 0

    def pairs() -> Iterator[tuple[str, int]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row.journal_key, row.line

    db.execute("CREATE TABLE keys (key TEXT NOT NULL, line INTEGER NOT NULL)")
    db.executemany("INSERT INTO keys VALUES (?, ?)", pairs())
    return count


class MessageSource:
    """A broadcast input read twice: :meth:`validate` checks every line, iteration streams.

    Standard input (``-``) is spooled to a temporary file during validation, so that it can
    be read again; files are simply reopened. Memory stays flat either way.

    Args:
        path: a ``.jsonl`` or ``.csv`` file, or ``-`` for JSONL on standard input.
        fmt: ``"jsonl"`` or ``"csv"`` to override the guess from the file name.
    """

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        guessed = "jsonl" if path == "-" else _FORMATS.get(Path(path).suffix.lower())
        if (fmt or guessed) is None:
            raise InputError(self.name, None, "unknown format: name it .jsonl or .csv, or --format")
        self.format: str = fmt or guessed or ""
        self._spool: IO[str] | None = None

    def _rows(self, lines: Iterable[str]) -> Iterator[Row]:
        parse = _csv_rows if self.format == "csv" else _jsonl_rows
        return parse(lines, self.name)

    def validate(self, on_duplicate: Callable[[InputError], object] | None = None) -> int:
        """Read and check every line without keeping any; returns the number of messages.

        Keys (:attr:`Row.journal_key`) must be unique: every line whose key an earlier line
        has is passed to ``on_duplicate`` as ``source:line: duplicate of line N``, in line
        order, and then the input is refused; without ``on_duplicate`` the first is raised.

        Raises:
            InputError: at the first bad line, after the duplicates, or if there is no message.
            OSError: the file cannot be read.
        """
        with contextlib.ExitStack() as stack:
            lines: Iterable[str]
            if self.path == "-":
                # Outlives this call: iteration reads it back, close() drops it.
                self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115
                lines = _tee(sys.stdin, self._spool)
            else:
                lines = stack.enter_context(_open(self.path, self.name))
            # "" is a private temporary database on disk: a million keys cost a few MB of RAM.
            keys = stack.enter_context(contextlib.closing(sqlite3.connect("")))
            count = _record_keys(keys, self._rows(lines))
            if not count:
                raise InputError(self.name, None, "no messages")
            repeats = 0
            for line, first in keys.execute(_REPEATS):
                error = InputError(self.name, line, f"duplicate of line {first}")
                if on_duplicate is None:
                    raise error
                on_duplicate(error)
                repeats += 1
        if repeats:
            raise InputError(
                self.name, None, f"{repeats} lines repeat an earlier key: give each its own key"
            )
        return count

    def __iter__(self) -> Iterator[Row]:
        if self._spool is not None:
            self._spool.seek(0)
            yield from self._rows(self._spool)
            return
        with _open(self.path, self.name) as file:
            yield from self._rows(file)

    def close(self) -> None:
        """Drop the spooled copy of standard input."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
