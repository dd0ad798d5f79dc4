"""Test helpers: `FakeDialog360`, an in-process fake of the 360dialog APIs.

Example::

    async with FakeDialog360(engage_all=True) as fake:
        async with Dialog360Client("test-key", base_url=fake.url) as client:
            await client.send_location("+15550001", Location(latitude=1.0, longitude=2.0))
        assert fake.sends["15550001"] == 1
"""

from ._delivery import Delivery, DeliveryLog, Fate, WebhookPlan
from ._fake import FakeDialog360
from ._models import FakeResponse, RecordedRequest
from ._samples import SEED_CONTACT_CARD

__all__ = [
    "SEED_CONTACT_CARD",
    "Delivery",
    "DeliveryLog",
    "FakeDialog360",
    "FakeResponse",
    "Fate",
    "RecordedRequest",
    "WebhookPlan",
]
