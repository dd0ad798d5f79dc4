"""The package's one cattrs converter: models to request bodies, response bodies to results.

Models never import this module; clients do. On unstructure only ``None`` and empty-tuple
defaults are omitted (``omit_if_default`` on every field would also drop constant fields such as
``type``, making the body invalid). On structure unknown keys are ignored: the API grows.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._results import ErrorDetail
from ._wire import MessageId
from .errors import APIError

__all__ = ["structure", "structure_response", "unstructure"]

_T = TypeVar("_T")

_ABSENT = (None, ())


def _build() -> cattrs.Converter:
    conv = cattrs.Converter(unstruct_collection_overrides={tuple: list})

    def unstructure_factory(cls: type[Any]) -> Any:
        omit = override(omit_if_default=True)
        overrides: dict[str, Any] = {
            a.name: omit for a in attrs.fields(cls) if a.default in _ABSENT
        }
        return make_dict_unstructure_fn(cls, conv, _cattrs_include_init_false=True, **overrides)

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    conv.register_structure_hook(ErrorDetail, _error_detail)
    # A wamid is taken as it came, for its validator to judge: the default str hook would turn
    # a null id into the string "None", recorded as sent.
    conv.register_structure_hook(
        MessageId,
        make_dict_structure_fn(MessageId, conv, id=override(struct_hook=_as_it_came)),
    )
    return conv


def _as_it_came(value: Any, _: type[Any]) -> Any:
    return value


def _error_detail(data: Any, _: type[ErrorDetail]) -> ErrorDetail:
    # Meta nests details in `error_data`; On-Premise uses `title`/`details` at the top level.
    error_data = data.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else data.get("details")
    code = data.get("code")
    return ErrorDetail(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        message=_str_or_none(data.get("message") or data.get("title")),
        details=_str_or_none(details),
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


_converter = _build()


def unstructure(obj: Any) -> dict[str, Any]:
    """A model as a JSON-ready dict, with absent optional fields left out."""
    result: dict[str, Any] = _converter.unstructure(obj)
    return result


def structure(data: Any, cls: type[_T]) -> _T:
    """``data`` (decoded JSON) as an instance of ``cls``; raises cattrs errors on a bad shape."""
    return _converter.structure(data, cls)


def structure_response(data: Any, cls: type[_T], *, status: int, request: str) -> _T:
    """A 2xx response body as ``cls``; a body of the wrong shape becomes an APIError."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs raises many types for a malformed body
        summary = type(exc).__name__
    raise APIError(
        f"unexpected response body ({summary}): expected {cls.__name__}",
        status=status,
        request=request,
        body=data,
    )
