"""Text and template messages: what reaches a user outside the 24-hour window.

Every model validates at construction, so bad input raises ValidationError before any I/O.
Wire shapes: ../shared/docs/webhooks-and-statuses.md §6 (templates) and 360dialog-api.md. The
Cloud body drops ``namespace``; On-Premise needs it and the ``deterministic`` language policy
(the clients do that, not the models). Parameters are in ``_parameters``.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from . import _validation as v
from ._parameters import (
    PARAMETERS,
    CurrencyParameter,
    DateTimeParameter,
    DocumentParameter,
    ImageParameter,
    LocationParameter,
    Parameter,
    PayloadParameter,
    TextParameter,
    VideoParameter,
)
from ._parameters import items as _items
from .errors import ValidationError

__all__ = [
    "MAX_BUTTONS",
    "MAX_TEXT_BODY",
    "PARAMETERS",
    "BodyComponent",
    "ButtonComponent",
    "Component",
    "CurrencyParameter",
    "DateTimeParameter",
    "DocumentParameter",
    "HeaderComponent",
    "ImageParameter",
    "LocationParameter",
    "Parameter",
    "PayloadParameter",
    "Template",
    "TemplateMessage",
    "TextMessage",
    "TextParameter",
    "VideoParameter",
]

MAX_TEXT_BODY = 4096  # a text message body (reliability-notes.md §5)
MAX_TEMPLATE_BODY = 1024  # a template body, variables filled in (reliability-notes.md §5)
MAX_HEADER_TEXT = 60  # a template's text header (Meta)
MAX_TEMPLATE_NAME = 512  # Meta: template names are lowercase, digits and "_", up to 512
MAX_BUTTONS = 10  # Meta: a template has at most 10 buttons, index 0-9

_NAME = re.compile(r"[a-z0-9_]+", re.ASCII)
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?", re.ASCII)  # "en", "en_US", "fil"
_NAMESPACE = re.compile(r"[A-Za-z0-9_\-]{1,128}", re.ASCII)  # On-Premise: a UUID with "_"


def _to(value: str) -> str:
    return v.recipient(value, "to")


_HEADER_PARAMETERS = (
    TextParameter,
    ImageParameter,
    VideoParameter,
    DocumentParameter,
    LocationParameter,
)
_BODY_PARAMETERS = (TextParameter, CurrencyParameter, DateTimeParameter)

# -- components -----------------------------------------------------------------------------


def _header_parameters(values: Iterable[Parameter]) -> tuple[Parameter, ...]:
    out = _items(values, _HEADER_PARAMETERS, "HeaderComponent.parameters")
    if len(out) != 1:
        raise ValidationError(
            "HeaderComponent.parameters", f"must hold exactly 1 parameter, got {len(out)}"
        )
    if isinstance(out[0], TextParameter) and len(out[0].text) > MAX_HEADER_TEXT:
        raise ValidationError(
            "HeaderComponent.parameters[0].text",
            f"must be at most {MAX_HEADER_TEXT} characters, got {len(out[0].text)}",
        )
    return out


def _body_parameters(values: Iterable[Parameter]) -> tuple[Parameter, ...]:
    out = _items(values, _BODY_PARAMETERS, "BodyComponent.parameters")
    if not out:
        raise ValidationError("BodyComponent.parameters", "must hold at least 1 parameter")
    size = sum(len(p.text) for p in out if isinstance(p, TextParameter))
    if size > MAX_TEMPLATE_BODY:
        raise ValidationError(
            "BodyComponent.parameters",
            f"texts must total at most {MAX_TEMPLATE_BODY} characters, got {size}",
        )
    return out


@attrs.frozen(kw_only=True)
class HeaderComponent:
    """The header's one variable: text (up to 60 characters), image, video, document or map."""

    parameters: tuple[Parameter, ...] = attrs.field(converter=_header_parameters)
    type: Literal["header"] = attrs.field(default="header", init=False)


@attrs.frozen(kw_only=True)
class BodyComponent:
    """The body's variables, in order: text, currency or date_time parameters."""

    parameters: tuple[Parameter, ...] = attrs.field(converter=_body_parameters)
    type: Literal["body"] = attrs.field(default="body", init=False)


_SUB_TYPES: dict[str, type[Any]] = {"quick_reply": PayloadParameter, "url": TextParameter}


def _sub_type(value: object) -> str:
    if value not in _SUB_TYPES or not isinstance(value, str):
        raise ValidationError(
            "ButtonComponent.sub_type", f"must be 'quick_reply' or 'url', got {v.shown(value)}"
        )
    return value


def _index(value: object) -> int:
    # The wire has a digit string ("0"); an int is what callers write.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 1:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_BUTTONS:
        raise ValidationError(
            "ButtonComponent.index",
            f"must be an integer in 0..{MAX_BUTTONS - 1}, got {v.shown(value)}",
        )
    return value


def _button_parameters(values: Iterable[Parameter]) -> tuple[Parameter, ...]:
    return _items(values, (PayloadParameter, TextParameter), "ButtonComponent.parameters")


@attrs.frozen(kw_only=True)
class ButtonComponent:
    """The variable of button ``index`` (0-9): a quick reply's payload or a URL's text suffix."""

    sub_type: Literal["quick_reply", "url"] = attrs.field(converter=_sub_type)
    index: int = attrs.field(converter=_index)
    parameters: tuple[Parameter, ...] = attrs.field(converter=_button_parameters)
    type: Literal["button"] = attrs.field(default="button", init=False)

    def __attrs_post_init__(self) -> None:
        kind = _SUB_TYPES[self.sub_type]
        if len(self.parameters) != 1 or not isinstance(self.parameters[0], kind):
            raise ValidationError(
                "ButtonComponent.parameters",
                f"a {self.sub_type} button takes exactly 1 {kind.__name__}",
            )


Component = HeaderComponent | BodyComponent | ButtonComponent
"""Any template component."""


# -- the template and the messages ----------------------------------------------------------


def _components(values: Iterable[Component]) -> tuple[Component, ...]:
    out = _items(values, typing.get_args(Component), "Template.components")
    for kind in (HeaderComponent, BodyComponent):
        if sum(isinstance(c, kind) for c in out) > 1:
            raise ValidationError("Template.components", f"must hold at most one {kind.__name__}")
    indices = [c.index for c in out if isinstance(c, ButtonComponent)]
    if len(set(indices)) != len(indices):
        raise ValidationError("Template.components", f"repeat a button index: {indices}")
    return out


def _pattern(value: object, field: str, pattern: re.Pattern[str], rule: str, most: int) -> str:
    if not isinstance(value, str) or len(value) > most or not pattern.fullmatch(value):
        raise ValidationError(field, f"must be {rule}, got {v.shown(value)}")
    return value


def _name(value: object) -> str:
    rule = f"1 to {MAX_TEMPLATE_NAME} lowercase letters, digits or '_'"
    return _pattern(value, "Template.name", _NAME, rule, MAX_TEMPLATE_NAME)


def _language(value: object) -> str:
    rule = "a language code such as 'en' or 'en_US'"
    return _pattern(value, "Template.language", _LANGUAGE, rule, 6)


def _namespace(value: object) -> str | None:
    if value is None:
        return None
    rule = "the template namespace (letters, digits, '_', '-'; up to 128)"
    return _pattern(value, "Template.namespace", _NAMESPACE, rule, 128)


@attrs.frozen(kw_only=True)
class Template:
    """An approved template by ``name`` and ``language`` code, with its variables.

    ``namespace`` is the On-Premise template namespace (required there, dropped on Cloud).
    """

    name: str = attrs.field(converter=_name)
    language: str = attrs.field(converter=_language)
    components: tuple[Component, ...] = attrs.field(default=(), converter=_components)
    namespace: str | None = attrs.field(default=None, converter=_namespace)


def _body(value: object) -> str:
    text = v.text(value, "TextMessage.body")
    if not 1 <= len(text) <= MAX_TEXT_BODY:
        raise ValidationError(
            "TextMessage.body", f"must be 1 to {MAX_TEXT_BODY} characters, got {len(text)}"
        )
    return text


def _preview_url(value: object) -> bool:
    return v.flag(value, "TextMessage.preview_url")


@attrs.frozen(kw_only=True)
class TextMessage:
    """A free-form text (1 to 4096 characters) to one user inside their 24-hour window.

    ``preview_url`` asks WhatsApp to show a preview of the first URL in ``body``.
    """

    to: str = attrs.field(converter=_to)
    body: str = attrs.field(converter=_body)
    preview_url: bool = attrs.field(default=False, converter=_preview_url)
    type: Literal["text"] = attrs.field(default="text", init=False)


def _template(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Template):
        raise ValidationError(
            "TemplateMessage.template", f"must be a Template, got {v.shown(value)}"
        )


@attrs.frozen(kw_only=True)
class TemplateMessage:
    """A template message to one user: it may be sent outside the 24-hour window."""

    to: str = attrs.field(converter=_to)
    template: Template = attrs.field(validator=_template)
    type: Literal["template"] = attrs.field(default="template", init=False)
