"""Both JSON back ends (orjson from the ``speed`` extra, and the standard library) agree."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import orjson  # the dev extra installs it; the fallback is tested by hiding it
import pytest

import dialog360_async._json as active

SAMPLES: list[Any] = [
    {"to": "16505551234", "type": "location", "location": {"latitude": 1.5, "longitude": -2.0}},
    {"name": {"formatted_name": "Zoë Ünïcødé ✓"}, "n": [1, 2, 3], "ok": True, "none": None},
]


@pytest.fixture
def stdlib_json(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` fail
    module = importlib.reload(active)
    yield module
    monkeypatch.undo()
    importlib.reload(active)


@pytest.mark.parametrize("value", SAMPLES)
def test_fallback_matches(stdlib_json: ModuleType, value: Any) -> None:
    encoded = stdlib_json.dumps(value)
    assert isinstance(encoded, bytes)
    assert stdlib_json.loads(encoded) == value
    assert orjson.loads(encoded) == value
    assert encoded == orjson.dumps(value)  # byte-identical bodies on the wire


def test_fallback_rejects_nan(stdlib_json: ModuleType) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        stdlib_json.dumps({"x": float("nan")})
