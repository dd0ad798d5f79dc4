"""Scale-out broadcasts: taskiq workers sharing rate limits and an at-most-once ledger in Redis.

Optional extra: ``pip install "dialog360_async[distributed]"``; the core package never imports
this one. Start workers with ``taskiq worker dialog360_async.distributed:broker`` (configured by
``D360_*`` environment variables, see ``_config``), then from any process::

    summary = await broadcast(((channel, message) for ...), broker=make_broker(redis_url))

Status webhooks received with ``WebhookReceiver(store=RedisStore(redis_url))`` are merged into
the campaigns, and ``campaign_status`` reports delivery as well as sends.

Tasks carry channel names, never API keys: each worker resolves names from its own
environment (``D360_CHANNELS`` or ``D360_CHANNELS_FILE``).
"""

from __future__ import annotations

try:
    import redis as _redis_package
    import taskiq as _taskiq_package
    import taskiq_redis as _taskiq_redis_package
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dialog360_async.distributed needs the 'distributed' extra: "
        'pip install "dialog360_async[distributed]"'
    ) from exc

from ._broker import D360Broker, broker, make_broker
from ._campaign import CampaignSummary, campaign_status, list_campaigns, wait_campaign
from ._config import BrokerSettings, WorkerSettings
from ._errors import (
    CampaignLostError,
    CampaignStalledError,
    DistributedError,
    RedisUnavailableError,
)
from ._keys import TASK_NAME
from ._ledger import RedisLedger
from ._limiter import RedisRateLimiter
from ._producer import Entry, broadcast, new_campaign_id
from ._results import MessageResult, campaign_results
from ._store import RedisStore

del _redis_package, _taskiq_package, _taskiq_redis_package

__all__ = [
    "TASK_NAME",
    "BrokerSettings",
    "CampaignLostError",
    "CampaignStalledError",
    "CampaignSummary",
    "D360Broker",
    "DistributedError",
    "Entry",
    "MessageResult",
    "RedisLedger",
    "RedisRateLimiter",
    "RedisStore",
    "RedisUnavailableError",
    "WorkerSettings",
    "broadcast",
    "broker",
    "campaign_results",
    "campaign_status",
    "list_campaigns",
    "make_broker",
    "new_campaign_id",
    "wait_campaign",
]
