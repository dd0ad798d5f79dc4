"""A wrapper that keeps API keys out of reprs, logs, pickles and serialized objects."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["Secret"]


class Secret:
    """An API key or token. Only :meth:`reveal` gives the value back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (for building the auth header only)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        # Pickling would write the key into queues, caches and crash dumps.
        raise TypeError("Secret values cannot be pickled")
