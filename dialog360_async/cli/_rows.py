"""What a broadcast input yields (:class:`Row`) and how reading one fails."""

from __future__ import annotations

from typing import IO, NamedTuple

from .._bulk import message_key
from .._models import Message

__all__ = ["InputError", "Row", "UsageError", "open_input"]


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


def open_input(path: str, name: str) -> IO[str]:
    """``path`` opened for reading as UTF-8 text (a BOM dropped); errors name the input."""
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(name, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(name, None, "is a directory, not a file") from None
