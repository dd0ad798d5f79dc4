"""Pytest plugin (entry point ``dialog360_async``): the ``dialog360_fake`` and
``dialog360_client`` fixtures.

It is loaded by every pytest run once the package is installed, so it imports nothing heavy at
module level and works without pytest-asyncio (the fixtures then fail with a clear message).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from dialog360_async import Dialog360Client
    from dialog360_async.testing import FakeDialog360

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised in a subprocess test
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = ["dialog360_client", "dialog360_fake"]

_F = TypeVar("_F", bound=Callable[..., Any])

_MISSING_ASYNCIO = (
    "The {name} fixture of dialog360_async needs pytest-asyncio: "
    "pip install 'pytest-asyncio>=0.24' (or dialog360-async[test])."
)


def _async_fixture(func: _F) -> _F:
    if pytest_asyncio is not None:
        return cast(_F, pytest_asyncio.fixture(func))

    name = func.__name__

    def unavailable() -> None:
        pytest.fail(_MISSING_ASYNCIO.format(name=name), pytrace=False)

    unavailable.__doc__ = func.__doc__
    return cast(_F, pytest.fixture(name=name)(unavailable))


@_async_fixture
async def dialog360_fake() -> AsyncIterator[FakeDialog360]:
    """A started `FakeDialog360` with default settings, closed after the test."""
    from dialog360_async.testing import FakeDialog360

    async with FakeDialog360() as fake:
        yield fake


@_async_fixture
async def dialog360_client(dialog360_fake: FakeDialog360) -> AsyncIterator[Dialog360Client]:
    """A `Dialog360Client` with key ``"test-key"`` pointed at ``dialog360_fake``."""
    from dialog360_async import Dialog360Client

    async with Dialog360Client("test-key", base_url=dialog360_fake.url) as client:
        yield client
