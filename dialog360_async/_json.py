"""JSON encoding: orjson when installed (the ``speed`` extra), else the standard library.

Both back ends decode alike: anything a server can send that is not plain JSON (invalid UTF-8,
lone surrogates, NaN/Infinity, numbers beyond a double, nesting deeper than orjson's 1024
levels, which the stdlib parser answers with RecursionError) raises ``ValueError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes | str], Any]

_MAX_INT_DIGITS = 309  # about 1e308, where orjson reports "number is infinity"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number is infinity when parsed as double")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError("number is infinity when parsed as double")
    return int(text)


_decoder = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int
)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _stdlib_dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode()


def _stdlib_loads(data: bytes | str) -> Any:
    # Strict UTF-8 first: json.loads(bytes) would decode with "surrogatepass".
    given_text = isinstance(data, str)
    text = data if isinstance(data, str) else bytes(data).decode()
    try:
        value = _decoder.decode(text)
        if given_text or "\\u" in text:
            # A lone surrogate (escaped, or in a str) decodes fine but can never be encoded.
            _encoder.encode(value).encode()
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return value


try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is missing
    dumps = _stdlib_dumps
    loads = _stdlib_loads
else:
    dumps = orjson.dumps
    loads = orjson.loads  # raises orjson.JSONDecodeError, a ValueError, for all of the above
