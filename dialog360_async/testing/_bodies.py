"""Request-body validation and the error bodies of the three 360dialog APIs."""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

ON_PREM_META: Final[Mapping[str, str]] = {"api_status": "stable", "version": "2.53.1"}
MAX_CONTACTS: Final = 257
MAX_BLOCK_BATCH: Final = 1000
MAX_TEXT: Final = 4096
MAX_REASON: Final = 60

_PHONE_CHARS = re.compile(r"^\+?[0-9 ().\-]+$")
_BIRTHDAY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_NAME_PARTS = ("first_name", "last_name", "middle_name", "suffix", "prefix")


class BodyError(Exception):
    """A request body the real API would reject.

    ``missing`` distinguishes "required parameter is missing" (Meta 131008) from
    "invalid parameter" (Meta 100); On-Premise reports both as 1009.
    """

    def __init__(self, details: str, *, missing: bool = False) -> None:
        super().__init__(details)
        self.details = details
        self.missing = missing


def digits(number: str) -> str:
    """Return only the digits of ``number`` (how WhatsApp derives a wa_id from input)."""
    return "".join(ch for ch in number if ch.isdigit())


def phone_wa_id(value: object) -> str | None:
    """Return the wa_id for a phone-like string, or None when it is not a plausible number."""
    if not isinstance(value, str) or not _PHONE_CHARS.match(value.strip()):
        return None
    wa_id = digits(value)
    return wa_id if 5 <= len(wa_id) <= 20 else None


def _token(nbytes: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode("ascii").rstrip("=")


def fbtrace_id() -> str:
    """Return a fresh Meta-style trace id."""
    return "A" + _token(16)


def wamid(wa_id: str, serial: int) -> str:
    """Return a unique Cloud message id; it embeds the recipient like real wamids do."""
    raw = f"{wa_id}:{serial}:".encode() + os.urandom(9)
    return "wamid." + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def on_prem_id() -> str:
    """Return a unique On-Premise message id (``gBGH...``)."""
    return "gBGH" + _token(18)


# -- error bodies -------------------------------------------------------------------------------


def meta_error(code: int, message: str, details: str) -> dict[str, Any]:
    """Build a Meta Graph error body (Cloud passthrough)."""
    return {
        "error": {
            "message": f"(#{code}) {message}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": fbtrace_id(),
        }
    }


def meta_body_error(err: BodyError) -> dict[str, Any]:
    """Map a body validation failure to its Meta error body."""
    if err.missing:
        return meta_error(131008, "Required parameter is missing", err.details)
    return meta_error(100, "Invalid parameter", err.details)


def on_prem_error(code: int, title: str, details: str) -> dict[str, Any]:
    """Build an On-Premise error body."""
    return {
        "errors": [{"code": code, "title": title, "details": details}],
        "meta": dict(ON_PREM_META),
    }


def on_prem_body_error(err: BodyError) -> dict[str, Any]:
    """Map a body validation failure to the On-Premise 1009 body."""
    return on_prem_error(1009, "Parameter value is not valid", err.details)


def gateway_error(http_code: int, message: str) -> dict[str, Any]:
    """Build a 360dialog gateway error body (camelCase, as documented)."""
    return {"meta": {"success": False, "httpCode": http_code, "developerMessage": message}}


def partner_error(message: str, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build a Partner API ``{"detail", "message"}`` error body."""
    return {"detail": dict(detail or {}), "message": message}


def user_error(code: int, message: str, details: str) -> dict[str, Any]:
    """Build one entry of ``failed_users[].errors``."""
    return {"message": message, "code": code, "error_data": {"details": details}}


# -- message bodies -----------------------------------------------------------------------------

MessageType = Literal["location", "contacts", "text", "template"]


def _require(body: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in body or body[key] is None:
        raise BodyError(f"The parameter {where}{key} is required.", missing=True)
    return body[key]


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BodyError(f"{where} must be a JSON object.")
    return value


def _optional_str(body: Mapping[str, Any], key: str, where: str) -> None:
    if key in body and not isinstance(body[key], str):
        raise BodyError(f"{where}{key} must be a string.")


def _coordinate(value: object, where: str, bound: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BodyError(f"{where} must be a number in decimal degrees.")
    try:
        number = float(value)
    except ValueError:
        raise BodyError(f"{where} must be a number in decimal degrees.") from None
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise BodyError(f"{where} must be between {-bound:g} and {bound:g}.")


def _location(body: Mapping[str, Any]) -> None:
    location = _object(_require(body, "location"), "location")
    _coordinate(_require(location, "latitude", "location."), "location.latitude", 90.0)
    _coordinate(_require(location, "longitude", "location."), "location.longitude", 180.0)
    for key in ("name", "address"):
        _optional_str(location, key, "location.")


def _object_list(contact: Mapping[str, Any], key: str, where: str) -> None:
    value = contact.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BodyError(f"{where}.{key} must be a list of objects.")
    for item in value:
        for field, field_value in item.items():
            if not isinstance(field_value, str):
                raise BodyError(f"{where}.{key}[].{field} must be a string.")


def _contact(contact: object, where: str) -> None:
    card = _object(contact, where)
    name = _object(_require(card, "name", f"{where}."), f"{where}.name")
    formatted = _require(name, "formatted_name", f"{where}.name.")
    if not isinstance(formatted, str) or not formatted.strip():
        raise BodyError(f"{where}.name.formatted_name must be a non-empty string.")
    for part in _NAME_PARTS:
        _optional_str(name, part, f"{where}.name.")
    if not any(isinstance(name.get(part), str) and name[part] for part in _NAME_PARTS):
        raise BodyError(
            f"{where}.name needs at least one of {', '.join(_NAME_PARTS)} besides formatted_name."
        )
    birthday = card.get("birthday")
    if birthday is not None and (not isinstance(birthday, str) or not _BIRTHDAY.match(birthday)):
        raise BodyError(f"{where}.birthday must be in YYYY-MM-DD format.")
    for key in ("addresses", "emails", "phones", "urls"):
        _object_list(card, key, where)
    if card.get("org") is not None:
        _object(card["org"], f"{where}.org")


def _contacts(body: Mapping[str, Any]) -> None:
    cards = _require(body, "contacts")
    if not isinstance(cards, list) or not cards:
        raise BodyError("contacts must be a non-empty list.")
    if len(cards) > MAX_CONTACTS:
        raise BodyError(f"contacts can hold at most {MAX_CONTACTS} entries, got {len(cards)}.")
    for index, card in enumerate(cards):
        _contact(card, f"contacts[{index}]")


def _text(body: Mapping[str, Any]) -> None:
    text = _object(_require(body, "text"), "text")
    value = _require(text, "body", "text.")
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise BodyError(f"text.body must be a string of 1 to {MAX_TEXT} characters.")
    if not isinstance(text.get("preview_url", False), bool):
        raise BodyError("text.preview_url must be a boolean.")


# Parameter type -> the members its object must have ("" : the value is a string).
_PARAMETER_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "text": ("",),
    "payload": ("",),
    "currency": ("fallback_value", "code", "amount_1000"),
    "date_time": ("fallback_value",),
    "location": ("latitude", "longitude"),
    "image": (),
    "video": (),
    "document": (),
}
_MEDIA: Final = frozenset({"image", "video", "document"})


def _parameter(parameter: object, where: str) -> None:
    item = _object(parameter, where)
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in _PARAMETER_FIELDS:
        raise BodyError(f"{where}.type must be one of {', '.join(_PARAMETER_FIELDS)}.")
    fields = _PARAMETER_FIELDS[kind]
    if fields == ("",):
        value = _require(item, kind, f"{where}.")
        if not isinstance(value, str) or not value:
            raise BodyError(f"{where}.{kind} must be a non-empty string.")
        return
    inner = _object(_require(item, kind, f"{where}."), f"{where}.{kind}")
    for field in fields:
        _require(inner, field, f"{where}.{kind}.")
    if kind == "location":
        _coordinate(inner["latitude"], f"{where}.location.latitude", 90.0)
        _coordinate(inner["longitude"], f"{where}.location.longitude", 180.0)
    if kind in _MEDIA and ("link" in inner) == ("id" in inner):
        raise BodyError(f"{where}.{kind} needs exactly one of link and id.")
    if isinstance(inner.get("link"), str) and not inner["link"].startswith("https://"):
        raise BodyError(f"{where}.{kind}.link must be an https URL.")


def _component(component: object, where: str) -> None:
    item = _object(component, where)
    kind = item.get("type")
    if kind not in ("header", "body", "button"):
        raise BodyError(f"{where}.type must be one of header, body, button.")
    if kind == "button":
        if item.get("sub_type") not in ("quick_reply", "url"):
            raise BodyError(f'{where}.sub_type must be "quick_reply" or "url".')
        index = _require(item, "index", f"{where}.")
        if not isinstance(index, str) or not index.isdigit() or len(index) > 1:
            raise BodyError(f'{where}.index must be a button position "0" to "9".')
    parameters = item.get("parameters", [])
    if not isinstance(parameters, list):
        raise BodyError(f"{where}.parameters must be a list of objects.")
    for i, parameter in enumerate(parameters):
        _parameter(parameter, f"{where}.parameters[{i}]")


def _template(body: Mapping[str, Any], *, cloud: bool) -> None:
    # webhooks-and-statuses.md §6: name + language.code; On-Premise also needs the namespace
    # and the deterministic language policy. Components are checked for their shape; whether
    # they fit the template is the registry's question (_templates.refusal).
    template = _object(_require(body, "template"), "template")
    name = _require(template, "name", "template.")
    if not isinstance(name, str) or not name.strip():
        raise BodyError("template.name must be a non-empty string.")
    language = _object(_require(template, "language", "template."), "template.language")
    code = _require(language, "code", "template.language.")
    if not isinstance(code, str) or not code:
        raise BodyError("template.language.code must be a non-empty string.")
    components = template.get("components")
    if components is not None and (
        not isinstance(components, list) or not all(isinstance(c, dict) for c in components)
    ):
        raise BodyError("template.components must be a list of objects.")
    for i, component in enumerate(components or ()):
        _component(component, f"template.components[{i}]")
    if not cloud:
        namespace = _require(template, "namespace", "template.")
        if not isinstance(namespace, str) or not namespace:
            raise BodyError("template.namespace must be a non-empty string.")
        if language.get("policy") != "deterministic":
            raise BodyError('template.language.policy must be "deterministic".')


def drop_nulls(value: Any) -> Any:
    """``value`` with every ``null`` object member left out, at any depth.

    Graph API clients (pywa among them) send unset optional fields as ``null``, which Meta
    treats as absent; the Meta-style send route reads bodies that way.
    """
    if isinstance(value, dict):
        return {key: drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [drop_nulls(item) for item in value]
    return value


def validate_message(body: object, *, cloud: bool) -> tuple[str, str]:
    """Validate a send body; return ``(to, wa_id)`` or raise `BodyError`."""
    message = _object(body, "The request body")
    if cloud:
        product = _require(message, "messaging_product")
        if product != "whatsapp":
            raise BodyError('messaging_product must be "whatsapp".')
    recipient_type = message.get("recipient_type")
    if recipient_type is not None and recipient_type != "individual":
        raise BodyError('recipient_type must be "individual".')
    to = _require(message, "to")
    wa_id = phone_wa_id(to)
    if wa_id is None:
        raise BodyError("to must be a phone number or WhatsApp ID.")
    kind = _require(message, "type")
    if kind == "template":
        _template(message, cloud=cloud)
        return str(to), wa_id
    checks = {"location": _location, "contacts": _contacts, "text": _text}
    if kind not in checks:
        raise BodyError("type must be one of location, contacts, text, template.")
    checks[kind](message)
    return str(to), wa_id


def block_users_list(body: object, *, cloud: bool) -> list[str]:
    """Validate a ``block_users`` body and return its users (Cloud and Partner share it)."""
    message = _object(body, "The request body")
    if cloud:
        product = _require(message, "messaging_product")
        if product != "whatsapp":
            raise BodyError('messaging_product must be "whatsapp".')
    entries = _require(message, "block_users")
    if not isinstance(entries, list) or not entries:
        raise BodyError("block_users must be a non-empty list.")
    if len(entries) > MAX_BLOCK_BATCH:
        raise BodyError(f"block_users can hold at most {MAX_BLOCK_BATCH} users per request.")
    users: list[str] = []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("user"), str)
            or not entry["user"]
        ):
            raise BodyError('Each block_users entry must be {"user": "<phone or wa_id>"}.')
        users.append(entry["user"])
    return users
