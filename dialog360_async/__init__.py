"""Asyncio-native SDK for the 360dialog WhatsApp Business API.

Send location and contacts messages; block, unblock, list and report users; all through
aiohttp with retries that never duplicate a message. Start with :class:`Dialog360Client`.
"""

from ._bulk import BulkSender, message_key
from ._cloud import Dialog360Client
from ._journal import JournalError, Ledger
from ._models import (
    Address,
    Contact,
    ContactsMessage,
    Email,
    Location,
    LocationMessage,
    Message,
    Name,
    Org,
    Phone,
    Url,
)
from ._onprem import OnPremiseClient
from ._outcomes import BulkStats, BulkSummary, Outcome
from ._partner import PartnerClient
from ._pool import SessionPool
from ._ratelimit import Limiter, RateLimiter
from ._report import DeliveryReport, FailureCount
from ._results import (
    BlocklistPage,
    BlockResult,
    ContactStatus,
    ErrorDetail,
    FailedUser,
    SentMessage,
    UserRef,
)
from ._retry import RetryPolicy
from ._secret import Secret
from ._store import BroadcastStore
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    DeliveryUnknownError,
    Dialog360Error,
    InvalidParameterError,
    NotEngagedError,
    PairRateLimitError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
    TransportError,
    UnreachableError,
    ValidationError,
)

__all__ = [
    "APIError",
    "Address",
    "AuthenticationError",
    "BlockResult",
    "BulkSender",
    "BulkStats",
    "BulkSummary",
    "BlocklistPage",
    "BroadcastStore",
    "Contact",
    "ContactStatus",
    "ContactsMessage",
    "DeliveryReport",
    "DeliveryUnknownError",
    "Dialog360Client",
    "Dialog360Error",
    "Email",
    "ErrorDetail",
    "FailedUser",
    "FailureCount",
    "InvalidParameterError",
    "JournalError",
    "Ledger",
    "Limiter",
    "Location",
    "LocationMessage",
    "Message",
    "Name",
    "NotEngagedError",
    "OnPremiseClient",
    "Org",
    "Outcome",
    "PairRateLimitError",
    "PartnerClient",
    "PermissionDeniedError",
    "Phone",
    "RateLimitError",
    "RateLimiter",
    "RetryPolicy",
    "Secret",
    "SentMessage",
    "ServerError",
    "SessionPool",
    "SpamRateLimitError",
    "TransportError",
    "UnreachableError",
    "Url",
    "UserRef",
    "ValidationError",
    "__version__",
    "message_key",
]
