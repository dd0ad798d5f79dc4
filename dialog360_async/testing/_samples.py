"""Sample payloads for tests and benchmarks."""

from __future__ import annotations

from typing import Any

__all__ = ["SEED_CONTACT_CARD"]

_ADDRESS = {"street": "STREET", "city": "CITY", "state": "STATE", "zip": "ZIP"}

SEED_CONTACT_CARD: dict[str, Any] = {
    "addresses": [
        {**_ADDRESS, "country": "COUNTRY", "country_code": "US", "type": "HOME"},
        {**_ADDRESS, "country": "COUNTRY", "country_code": "US", "type": "WORK"},
    ],
    "birthday": "1999-01-23",
    "emails": [{"email": "EMAIL", "type": "WORK"}, {"email": "EMAIL", "type": "HOME"}],
    "name": {
        "formatted_name": "NAME",
        "first_name": "FIRST_NAME",
        "last_name": "LAST_NAME",
        "middle_name": "MIDDLE_NAME",
        "suffix": "SUFFIX",
        "prefix": "PREFIX",
    },
    "org": {"company": "COMPANY", "department": "DEPARTMENT", "title": "TITLE"},
    "phones": [
        {"phone": "PHONE_NUMBER", "type": "HOME"},
        {"phone": "PHONE_NUMBER", "type": "WORK", "wa_id": "PHONE_OR_WA_ID"},
    ],
    "urls": [{"url": "URL", "type": "WORK"}, {"url": "URL", "type": "HOME"}],
}
"""The full contact card of 360dialog's "Contacts & Location Messages" page, in wire shape,
with its placeholders ``COUNTRY_CODE`` and ``YEAR_MONTH_DAY`` given real values (both are
validated)."""
