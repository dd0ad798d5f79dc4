"""The package's one cattrs converter: models to request bodies, response bodies to results.

Models never import this module; clients do. On unstructure only ``None`` and empty-tuple
defaults are omitted (``omit_if_default`` on every field would also drop constant fields such as
``type``, making the body invalid). On structure unknown keys are ignored: the API grows.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _models as m
from . import _templates as t
from ._results import ErrorDetail
from ._wire import MessageId
from .errors import APIError, ValidationError

__all__ = ["structure", "structure_response", "unstructure"]

_T = TypeVar("_T")


def _build() -> cattrs.Converter:
    conv = cattrs.Converter(unstruct_collection_overrides={tuple: list})

    def unstructure_factory(cls: type[Any]) -> Any:
        omit = override(omit_if_default=True)
        overrides: dict[str, Any] = {
            a.name: omit for a in attrs.fields(cls) if a.default in m.OMITTED
        }
        return make_dict_unstructure_fn(cls, conv, _cattrs_include_init_false=True, **overrides)

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    for cls, hook in _MODEL_HOOKS.items():
        conv.register_unstructure_hook(cls, hook)
    _template_hooks(conv)
    conv.register_structure_hook(ErrorDetail, _error_detail)
    # A wamid is taken as it came, for its validator to judge: the default str hook would turn
    # a null id into the string "None", recorded as sent.
    conv.register_structure_hook(
        MessageId,
        make_dict_structure_fn(MessageId, conv, id=override(struct_hook=_as_it_came)),
    )
    return conv


# -- location and contacts messages: one generated function per model ------------------------
# A model's __dict__ holds only the fields the wire carries, in cattrs' order (fast_init in
# _models): a leaf's body is a copy of it, made in C. A model holding models swaps each of
# those for its body. The generic cattrs hooks cost 10 us for the seed card.

_Hook = Callable[[Any], dict[str, Any]]
_SCALARS = (str, float, int, bool, type(None))


def _held(cls: type[Any]) -> list[tuple[str, type[Any], bool]]:
    # The fields of cls that hold models: (name, model class, whether a tuple of them).
    held = []
    for a in attrs.fields(cls):
        parts = typing.get_args(a.type) or (a.type,)
        inner = [x for x in parts if attrs.has(x)]
        if inner:
            held.append((a.name, inner[0], typing.get_origin(a.type) is tuple))
        elif typing.get_origin(a.type) is not typing.Literal and not set(parts) <= set(_SCALARS):
            raise TypeError(f"no generated hook for {cls.__name__}.{a.name}: {a.type}")
    return held


def _model_hook(cls: type[Any], hooks: dict[type[Any], _Hook]) -> _Hook:
    if cls in hooks:
        return hooks[cls]
    attrs.resolve_types(cls)
    if "__slots__" in cls.__dict__:
        raise TypeError(f"no generated hook for {cls.__name__}: its fields are in slots")
    scope: dict[str, Any] = {"_copy": dict.copy, "_vars": vars}
    swaps = []
    for name, inner, many in _held(cls):
        scope[f"h_{name}"] = _model_hook(inner, hooks)
        if _held(inner):
            body = f"[*map(h_{name}, v)]" if many else f"h_{name}(v)"
        else:  # a leaf: its body is a copy of its __dict__, made without a Python call
            body = "[*map(_copy, map(_vars, v))]" if many else "_copy(_vars(v))"
        swaps.append(f" v = r.get({name!r})\n if v is not None:\n  r[{name!r}] = {body}\n")
    source = f"def hook(o):\n r = _copy(o.__dict__)\n{''.join(swaps)} return r\n"
    exec(compile(source, f"<unstructure {cls.__name__}>", "exec"), scope)
    hook: _Hook = scope["hook"]
    hooks[cls] = hook
    return hook


def _model_hooks() -> dict[type[Any], _Hook]:
    hooks: dict[type[Any], _Hook] = {}
    for cls in (m.LocationMessage, m.ContactsMessage):
        _model_hook(cls, hooks)
    return hooks


_MODEL_HOOKS = _model_hooks()


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


# -- text and template messages: flat models, nested wire (see _templates) -------------------

_SCALAR = frozenset({"text", "payload"})  # {"type": "text", "text": "..."}: no inner object
_PARAMETER_KINDS: dict[str, type[Any]] = {
    attrs.fields(cls).type.default: cls for cls in t.PARAMETERS
}
_COMPONENT_KINDS: dict[str, type[Any]] = {
    "header": t.HeaderComponent,
    "body": t.BodyComponent,
    "button": t.ButtonComponent,
}


def _unstructure_parameter(p: Any) -> dict[str, Any]:
    kind = p.type
    if kind in _SCALAR:
        return {"type": kind, kind: getattr(p, kind)}
    inner = {a.name: getattr(p, a.name) for a in attrs.fields(type(p)) if a.init}
    return {"type": kind, kind: {k: value for k, value in inner.items() if value is not None}}


def _unstructure_component(c: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": c.type}
    if isinstance(c, t.ButtonComponent):
        out["sub_type"] = c.sub_type
        out["index"] = str(c.index)
    out["parameters"] = [_unstructure_parameter(p) for p in c.parameters]
    return out


def _unstructure_template(template: t.Template) -> dict[str, Any]:
    out: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.components:
        out["components"] = [_unstructure_component(c) for c in template.components]
    if template.namespace is not None:
        out["namespace"] = template.namespace
    return out


def _object(data: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    # Strict: a misspelt key in a JSONL line must not pass as an absent optional field.
    if not isinstance(data, dict):
        raise ValidationError(where, f"must be an object, got {type(data).__name__}")
    unknown = [key for key in data if key not in allowed]
    if unknown:
        raise ValidationError(where, f"unknown key {unknown[0]!r}")
    return data


def _make(cls: type[_T], where: str, fields: dict[str, Any]) -> _T:
    names = {a.name for a in attrs.fields(cls) if a.init}  # type: ignore[arg-type]
    unknown = [key for key in fields if key not in names]
    if unknown:
        raise ValidationError(where, f"unknown key {unknown[0]!r}")
    missing = [a.name for a in attrs.fields(cls) if a.init and a.default is attrs.NOTHING]  # type: ignore[arg-type]
    absent = [name for name in missing if name not in fields]
    if absent:
        raise ValidationError(where, f"missing {absent[0]!r}")
    return cls(**fields)


def _kind(data: Any, kinds: dict[str, type[Any]], where: str) -> tuple[str, type[Any]]:
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in kinds:
        raise ValidationError(f"{where}.type", f"must be one of {', '.join(kinds)}, got {kind!r}")
    return kind, kinds[kind]


def _structure_parameter(data: Any, where: str) -> Any:
    kind, cls = _kind(data, _PARAMETER_KINDS, where)
    _object(data, where, frozenset({"type", kind}))
    if kind in _SCALAR:
        return _make(cls, where, {kind: data.get(kind)})
    inner = data.get(kind)
    if not isinstance(inner, dict):
        raise ValidationError(f"{where}.{kind}", f"must be an object, got {type(inner).__name__}")
    return _make(cls, f"{where}.{kind}", inner)


def _parameters(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ValidationError(where, f"must be a list, got {type(data).__name__}")
    return [_structure_parameter(item, f"{where}[{i}]") for i, item in enumerate(data)]


def _structure_component(data: Any, where: str) -> Any:
    kind, cls = _kind(data, _COMPONENT_KINDS, where)
    extra = {"sub_type", "index"} if kind == "button" else set()
    fields = dict(_object(data, where, frozenset({"type", "parameters", *extra})))
    del fields["type"]
    fields["parameters"] = _parameters(data.get("parameters"), f"{where}.parameters")
    return _make(cls, where, fields)


def _template_from(data: Any, where: str) -> t.Template:
    fields = dict(_object(data, where, frozenset({"name", "language", "components", "namespace"})))
    if "language" not in fields:
        raise ValidationError(where, "missing 'language'")
    language = _object(fields["language"], f"{where}.language", frozenset({"code", "policy"}))
    if language.get("policy", "deterministic") != "deterministic":
        raise ValidationError(f"{where}.language.policy", "must be 'deterministic'")
    fields["language"] = language.get("code")
    components = fields.get("components", [])
    if not isinstance(components, list):
        raise ValidationError(f"{where}.components", "must be a list")
    fields["components"] = [
        _structure_component(c, f"{where}.components[{i}]") for i, c in enumerate(components)
    ]
    return _make(t.Template, where, fields)


def _structure_template(data: Any, _: type[Any]) -> t.Template:
    return _template_from(data, "template")


def _structure_message(data: Any, cls: type[Any]) -> Any:
    kind = attrs.fields(cls).type.default
    fields = dict(_object(data, "$", frozenset({"to", "type", kind})))
    if fields.pop("type", kind) != kind:
        raise ValidationError("$.type", f"must be {kind!r}, got {data.get('type')!r}")
    if kind not in fields:
        raise ValidationError("$", f"missing {kind!r}")
    if cls is t.TextMessage:
        text = _object(fields.pop("text"), "$.text", frozenset({"body", "preview_url"}))
        if "body" not in text:
            raise ValidationError("$.text", "missing 'body'")
        fields.update(text)
    else:
        fields["template"] = _template_from(fields["template"], "$.template")
    return _make(cls, "$", fields)


def _template_hooks(conv: cattrs.Converter) -> None:
    for cls in t.PARAMETERS:
        conv.register_unstructure_hook(cls, _unstructure_parameter)
    for cls in _COMPONENT_KINDS.values():
        conv.register_unstructure_hook(cls, _unstructure_component)
    conv.register_unstructure_hook(t.Template, _unstructure_template)
    conv.register_unstructure_hook(
        t.TextMessage,
        lambda m: {
            "to": m.to,
            "type": "text",
            "text": {"body": m.body, "preview_url": m.preview_url},
        },
    )
    conv.register_structure_hook(t.Template, _structure_template)
    conv.register_structure_hook(t.TextMessage, _structure_message)
    conv.register_structure_hook(t.TemplateMessage, _structure_message)


_converter = _build()


def unstructure(obj: Any) -> dict[str, Any]:
    """A model as a JSON-ready dict, with absent optional fields left out."""
    hook = _MODEL_HOOKS.get(type(obj))
    if hook is not None:  # every location or contacts send: skip cattrs' dispatch
        return hook(obj)
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
