"""Input files of the ``dialog360`` tool: contact cards and broadcast lists (JSONL or CSV).

Everything is checked strictly against the wire shape (unknown keys, wrong types, missing fields)
before the models validate their values, so a typo in line 9,000 is reported as
``file:9000: reason`` instead of being dropped or coerced silently. A broadcast's keys are
checked for repeats too, in a temporary SQLite table so that memory stays flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import attrs
import cattrs

from .._converter import structure
from .._models import (
    MESSAGE_KINDS,
    Contact,
    ContactsMessage,
    LocationMessage,
    Message,
)
from .._templates import Template
from ..errors import ValidationError
from ._csv import csv_rows
from ._rows import InputError, Row, UsageError, open_input
from ._send import TemplateColumns

__all__ = [
    "InputError",
    "MessageSource",
    "Row",
    "UsageError",
    "load_contacts",
    "message_source",
    "parse_contacts",
]

# Wire keys a message line may carry besides its payload; "key" is the journal key.
_MESSAGE_EXTRAS = frozenset({"key", "type", "messaging_product", "recipient_type"})
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


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
        with open_input(path, name) as file:
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


def guess_format(path: str) -> str | None:
    """``"jsonl"`` or ``"csv"`` by a broadcast input's name (``-`` is JSONL), else None."""
    return "jsonl" if path == "-" else _FORMATS.get(Path(path).suffix.lower())


class MessageSource:
    """A broadcast input read twice: :meth:`validate` checks every line, iteration streams.

    Standard input (``-``) is spooled to a temporary file during validation, so that it can
    be read again; files are simply reopened. Memory stays flat either way.

    Args:
        path: a ``.jsonl`` or ``.csv`` file, or ``-`` for JSONL on standard input.
        fmt: ``"jsonl"`` or ``"csv"`` to override the guess from the file name.
        columns: CSV rows fill this template's variables (the input must be CSV).
    """

    def __init__(
        self, path: str, fmt: str | None = None, columns: TemplateColumns | None = None
    ) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self._columns = columns
        guessed = guess_format(path)
        if (fmt or guessed) is None:
            raise InputError(self.name, None, "unknown format: name it .jsonl or .csv, or --format")
        self.format: str = fmt or guessed or ""
        self._spool: IO[str] | None = None

    def _rows(self, lines: Iterable[str]) -> Iterator[Row]:
        if self.format == "csv":
            return csv_rows(lines, self.name, self._columns)
        return _jsonl_rows(lines, self.name)

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
                lines = stack.enter_context(open_input(self.path, self.name))
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
        with open_input(self.path, self.name) as file:
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


def message_source(args: argparse.Namespace) -> MessageSource:
    """The input of ``broadcast``: ``INPUT [--format]``, and with ``--template NAME --language
    CODE [--namespace NS]`` a CSV whose rows fill that template's variables.

    Raises:
        UsageError: the template options are incomplete or go with a JSONL input.
    """
    if args.template is None:
        if args.language is not None or args.namespace is not None:
            raise UsageError("--language and --namespace go with --template NAME")
        return MessageSource(args.input, args.format)
    if args.language is None:
        raise UsageError("--template needs --language CODE (e.g. en_US)")
    if (args.format or guess_format(args.input)) != "csv":
        raise UsageError(
            "--template fills the columns of a CSV input (name it .csv, or --format csv); "
            "a JSONL line names its own template"
        )
    if args.on_premise and args.namespace is None:
        raise UsageError("--on-premise needs --namespace NS: On-Premise templates name it")
    template = Template(name=args.template, language=args.language, namespace=args.namespace)
    return MessageSource(args.input, "csv", TemplateColumns(template=template))
