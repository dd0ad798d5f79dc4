"""The fake's message templates: which are approved, and how a template send is refused.

Codes: ../shared/docs/webhooks-and-statuses.md §5 (132000 parameter count mismatch, 132001 no
such template in that language or not approved, 132012 parameter format mismatch, 132015
paused, 132016 disabled). Both APIs answer them as HTTP 400 at send time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

__all__ = ["TemplateSide", "TemplateSpec"]

TemplateStatus = Literal["APPROVED", "PAUSED", "DISABLED", "PENDING", "REJECTED"]
Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
_STATUSES = frozenset({"APPROVED", "PAUSED", "DISABLED", "PENDING", "REJECTED"})
_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
_HEADERS = frozenset({"text", "image", "video", "document", "location"})
_BUTTONS = frozenset({"quick_reply", "url"})
_REFUSED: Mapping[str, tuple[int, str]] = {
    "PAUSED": (132015, "Template is paused"),
    "DISABLED": (132016, "Template is disabled"),
}
_COUNT = "Number of parameters does not match the expected number of params"
_FORMAT = "Parameter format does not match format in the created template"

Refusal = tuple[int, str, str]
"""``(code, message, details)`` of a refused template send."""


@attrs.frozen(kw_only=True)
class TemplateSpec:
    """A template registered with `FakeDialog360.add_template`.

    Attributes:
        name: The template name.
        language: Its language code (one spec per name and language, as on WhatsApp).
        body_params: How many body variables a send must fill.
        header: The header variable's type (``"text"``, ``"image"``, ``"video"``,
            ``"document"``, ``"location"``), or None for a header without one.
        buttons: The sub_type of each button by index (``"quick_reply"`` or ``"url"``). A
            ``url`` button has a variable suffix every send must fill; a quick reply's payload
            is optional.
        status: ``APPROVED`` (sendable), ``PAUSED`` (132015), ``DISABLED`` (132016), or
            ``PENDING``/``REJECTED`` (132001: not approved).
        category: ``MARKETING``, ``UTILITY`` or ``AUTHENTICATION``.
    """

    name: str
    language: str
    body_params: int = 0
    header: str | None = None
    buttons: tuple[str, ...] = ()
    status: TemplateStatus = "APPROVED"
    category: Category = "MARKETING"

    def __attrs_post_init__(self) -> None:
        if not self.name or not self.language:
            raise ValueError("a template needs a name and a language")
        if isinstance(self.body_params, bool) or not (
            isinstance(self.body_params, int) and self.body_params >= 0
        ):
            raise ValueError("body_params must be a whole number >= 0")
        if self.header is not None and self.header not in _HEADERS:
            raise ValueError(f"header must be None or one of {sorted(_HEADERS)}")
        if not set(self.buttons) <= _BUTTONS:
            raise ValueError("buttons must be 'quick_reply' or 'url' each")
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {sorted(_STATUSES)}")
        if self.category not in _CATEGORIES:
            raise ValueError(f"category must be one of {sorted(_CATEGORIES)}")


def _parameters(component: Mapping[str, Any]) -> list[Any]:
    found = component.get("parameters")
    return found if isinstance(found, list) else []


def refusal(spec: TemplateSpec | None, template: Mapping[str, Any]) -> Refusal | None:
    """Why WhatsApp would refuse this (shape-checked) ``template`` send body, if it would."""
    name, code = template["name"], template["language"]["code"]
    if spec is None or spec.status in ("PENDING", "REJECTED"):
        return (
            132001,
            "Template name does not exist in the translation",
            f"template name ({name}) does not exist in {code}",
        )
    if spec.status in _REFUSED:
        number, message = _REFUSED[spec.status]
        return number, message, f"template {name} ({code}) is {spec.status.lower()}"
    components = [c for c in template.get("components") or () if isinstance(c, dict)]
    headers = [_parameters(c) for c in components if c.get("type") == "header"]
    header = headers[0] if headers else []
    if len(header) != (spec.header is not None):
        return 132000, _COUNT, f"header: expected {int(spec.header is not None)}, got {len(header)}"
    if header and header[0].get("type") != spec.header:
        return 132012, _FORMAT, f"header: expected {spec.header}, got {header[0].get('type')}"
    body = sum(len(_parameters(c)) for c in components if c.get("type") == "body")
    if body != spec.body_params:
        return 132000, _COUNT, f"body: expected {spec.body_params}, got {body}"
    filled: set[int] = set()
    for component in components:
        if component.get("type") != "button":
            continue
        index = int(component["index"])
        if index >= len(spec.buttons) or len(_parameters(component)) != 1:
            return 132000, _COUNT, f"button {index}: not a button with one variable"
        if component["sub_type"] != spec.buttons[index]:
            expected = spec.buttons[index]
            return 132012, _FORMAT, f"button {index}: expected {expected}"
        filled.add(index)
    for index, sub_type in enumerate(spec.buttons):
        if sub_type == "url" and index not in filled:
            return 132000, _COUNT, f"button {index}: its url variable is missing"
    return None


class TemplateSide:
    """The fake's template registry (a base of `FakeDialog360`).

    Until the first `add_template` every template name is accepted; after it only registered
    ones are, each refused as WhatsApp would (see `TemplateSpec`).
    """

    def _init_templates(self) -> None:
        self._templates: dict[tuple[str, str], TemplateSpec] = {}

    def add_template(
        self,
        name: str,
        language: str,
        *,
        body_params: int = 0,
        header: str | None = None,
        buttons: Iterable[str] = (),
        status: TemplateStatus = "APPROVED",
        category: Category = "MARKETING",
    ) -> TemplateSpec:
        """Register (or replace) the template ``name`` in ``language``; see `TemplateSpec`."""
        spec = TemplateSpec(
            name=name,
            language=language,
            body_params=body_params,
            header=header,
            buttons=tuple(buttons),
            status=status,
            category=category,
        )
        self._templates[name, language] = spec
        return spec

    def set_template_status(self, name: str, language: str, status: TemplateStatus) -> None:
        """Pause (132015), disable (132016) or approve again a registered template."""
        spec = self._templates.get((name, language))
        if spec is None:
            raise KeyError(f"no template {name!r} in {language!r}: add_template() it first")
        self._templates[name, language] = attrs.evolve(spec, status=status)

    @property
    def templates(self) -> Mapping[tuple[str, str], TemplateSpec]:
        """The registered templates by ``(name, language)``."""
        return dict(self._templates)

    def _template_refusal(self, body: Mapping[str, Any]) -> Refusal | None:
        """Why a send body would be refused for its template (None: not one, or fine)."""
        if not self._templates or body.get("type") != "template":
            return None
        template = body["template"]
        spec = self._templates.get((template["name"], template["language"]["code"]))
        return refusal(spec, template)
