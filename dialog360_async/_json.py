"""JSON encoding: orjson when installed (the ``speed`` extra), else the standard library."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes | str], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is missing
    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def dumps(obj: Any) -> bytes:
        return _encoder.encode(obj).encode()

    loads = json.loads
else:
    dumps = orjson.dumps
    loads = orjson.loads
