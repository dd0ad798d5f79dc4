"""Templates from strings: ``send-template``'s options and the template columns of a CSV broadcast.

Both fill a template's variables the same way: body texts ``{{1}}`` ... ``{{N}}`` in order, and
at most one header variable, a text or an https link to an image, video or document. A bad
value is a ValidationError named after the option or column it came from (``body.2: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from .._parameters import (
    DocumentParameter,
    ImageParameter,
    Parameter,
    TextParameter,
    VideoParameter,
)
from .._templates import BodyComponent, Component, HeaderComponent, Template, TemplateMessage
from ..errors import ValidationError

__all__ = ["HEADER_KINDS", "TEMPLATE_LAYOUT", "TemplateColumns", "build_template"]

HEADER_KINDS = ("text", "image", "video", "document")
"""What a header variable may be: ``--header-KIND`` on the command line, ``header.KIND`` in CSV."""

TEMPLATE_LAYOUT = "to,body.1,...,body.N[,header.text|header.image|header.video|header.document]"
"""The header of a CSV broadcast with ``--template`` (plus an optional key column)."""

_MEDIA: dict[str, type[ImageParameter | VideoParameter | DocumentParameter]] = {
    "image": ImageParameter,
    "video": VideoParameter,
    "document": DocumentParameter,
}
_BODY = re.compile(r"body\.([1-9][0-9]*)", re.ASCII)
_HEADER = {f"header.{kind}": kind for kind in HEADER_KINDS}

Variable = tuple[str, str | None]
"""A variable's label (the option or column it came from) and its value."""


def _parameter(label: str, kind: str, value: str | None) -> Parameter:
    if value is None or not value.strip():
        raise ValidationError(label, "must not be empty")
    try:
        return TextParameter(text=value) if kind == "text" else _MEDIA[kind](link=value)
    except ValidationError as exc:
        raise ValidationError(label, exc.rule) from None


def build_template(
    template: Template, body: Sequence[Variable] = (), header: tuple[str, Variable] | None = None
) -> Template:
    """``template`` (name, language, namespace) with these variables as its components.

    Args:
        template: the template, without components.
        body: the body's text variables, in order.
        header: the header variable's kind (one of :data:`HEADER_KINDS`) and the variable.

    Raises:
        ValidationError: a value is empty or breaks a model rule.
    """
    components: list[Component] = []
    if header is not None:
        kind, (label, value) = header
        parameter = _parameter(label, kind, value)
        try:
            components.append(HeaderComponent(parameters=[parameter]))
        except ValidationError as exc:  # a text over 60 characters: name where it came from
            raise ValidationError(label, exc.rule) from None
    if body:
        texts = [_parameter(label, "text", value) for label, value in body]
        components.append(BodyComponent(parameters=texts))
    return attrs.evolve(template, components=components)


@attrs.frozen(kw_only=True)
class TemplateColumns:
    """The ``--format`` of a CSV broadcast whose every row fills ``template``'s variables.

    The header is :data:`TEMPLATE_LAYOUT`: ``to``, body texts ``body.1`` ... ``body.N`` (all of
    them, from 1), at most one ``header.KIND`` and an optional ``key``; every cell is needed.
    """

    template: Template

    def problem(self, header: Sequence[str]) -> tuple[str, str] | None:
        """What is wrong with a CSV header line, as (problem, column), or None."""
        numbers = {int(m[1]) for c in header if (m := _BODY.fullmatch(c))}
        gaps = [f"body.{n}" for n in range(1, max(numbers, default=0) + 1) if n not in numbers]
        checks = (
            ("unknown column", [c for c in header if not self._known(c)]),
            ("missing column", ["to"] if "to" not in header else []),
            ("missing column", gaps),
            ("duplicate column", sorted({c for c in header if header.count(c) > 1})),
            ("a second header column", [c for c in header if c in _HEADER][1:]),
        )
        for text, names in checks:
            if names:
                return text, names[0]
        return None

    @staticmethod
    def _known(column: str) -> bool:
        return column in ("to", "key") or column in _HEADER or _BODY.fullmatch(column) is not None

    def message(self, row: Mapping[str, str | None]) -> TemplateMessage:
        """The template message of one row (column name to value, None for an empty cell).

        Raises:
            ValidationError: a cell is empty or a value breaks a model rule.
        """
        body = sorted((int(m[1]), c) for c in row if (m := _BODY.fullmatch(c)))
        header = next(((_HEADER[c], (c, row[c])) for c in row if c in _HEADER), None)
        template = build_template(self.template, [(c, row[c]) for _, c in body], header)
        return TemplateMessage(to=row.get("to") or "", template=template)
