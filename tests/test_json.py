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


HOSTILE: dict[str, bytes] = {
    "deep-array": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep-1100": b"[" * 1100 + b"]" * 1100,
    "huge-int": b"9" * 100_000,
    "int-past-a-double": b"1" + b"0" * 400,
    "huge-float": b"1e999",
    "nan": b"NaN",
    "infinity": b"[-Infinity]",
    "invalid-utf8": b'{"id":"\xff"}',
    "encoded-surrogate": b'{"id":"\xed\xa0\x80"}',
    "escaped-lone-surrogate": b'{"id":"\\ud800"}',
    "truncated": b'{"messages":[{"id":"wam',
}


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "orjson":
        yield active
        return
    monkeypatch.setitem(sys.modules, "orjson", None)
    yield importlib.reload(active)
    monkeypatch.undo()
    importlib.reload(active)


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_a_value_error_on_both_backends(backend: Any, data: bytes) -> None:
    # Exactly ValueError, whatever the message: never RecursionError, never a silent inf or NaN.
    with pytest.raises(ValueError):  # noqa: PT011
        backend.loads(data)
    with pytest.raises(ValueError):  # noqa: PT011
        backend.loads(data.decode("utf-8", "surrogatepass"))


def test_ordinary_input_still_reads_on_both_backends(backend: Any) -> None:
    assert backend.loads(b'{"id":"\\ud83d\\ude00 ok","n":-12,"x":1.5e3}') == {
        "id": "\U0001f600 ok",
        "n": -12,
        "x": 1500.0,
    }
    assert backend.loads(b"[" * 500 + b"]" * 500) is not None  # nesting a body really has


async def test_deep_success_body_with_the_stdlib_backend_is_unknown(
    stdlib_json: ModuleType,
) -> None:
    from dialog360_async import DeliveryUnknownError, Dialog360Client, Location
    from dialog360_async.testing import FakeDialog360, FakeResponse

    async with FakeDialog360(throughput=None) as fake:
        fake.script("POST", "/messages", FakeResponse(body=b"[" * 100_000 + b"]" * 100_000))
        async with Dialog360Client("k", base_url=fake.url, retry=None) as client:
            with pytest.raises(DeliveryUnknownError, match="not JSON"):
                await client.send_location("+16505551234", Location(latitude=1, longitude=2))
