"""Asyncio-native SDK for the 360dialog WhatsApp Business API.

Send location, contacts, text and template messages; block, unblock, list and report users;
all through aiohttp with retries that never duplicate a message. Start with
:class:`Dialog360Client`.
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
from ._policy import CampaignPolicy, Suppression
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
from ._store_reach import SuppressionList
from ._templates import (
    BodyComponent,
    ButtonComponent,
    Component,
    CurrencyParameter,
    DateTimeParameter,
    DocumentParameter,
    HeaderComponent,
    ImageParameter,
    LocationParameter,
    Parameter,
    PayloadParameter,
    Template,
    TemplateMessage,
    TextMessage,
    TextParameter,
    VideoParameter,
)
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
    PolicyError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
    SuppressedError,
    TemplateHaltedError,
    TransportError,
    UnreachableError,
    ValidationError,
    WindowClosedError,
)

__all__ = [
    "APIError",
    "Address",
    "AuthenticationError",
    "BlockResult",
    "BlocklistPage",
    "BodyComponent",
    "BroadcastStore",
    "BulkSender",
    "BulkStats",
    "BulkSummary",
    "ButtonComponent",
    "CampaignPolicy",
    "Component",
    "Contact",
    "ContactStatus",
    "ContactsMessage",
    "CurrencyParameter",
    "DateTimeParameter",
    "DeliveryReport",
    "DeliveryUnknownError",
    "Dialog360Client",
    "Dialog360Error",
    "DocumentParameter",
    "Email",
    "ErrorDetail",
    "FailedUser",
    "FailureCount",
    "HeaderComponent",
    "ImageParameter",
    "InvalidParameterError",
    "JournalError",
    "Ledger",
    "Limiter",
    "Location",
    "LocationMessage",
    "LocationParameter",
    "Message",
    "Name",
    "NotEngagedError",
    "OnPremiseClient",
    "Org",
    "Outcome",
    "PairRateLimitError",
    "Parameter",
    "PartnerClient",
    "PayloadParameter",
    "PermissionDeniedError",
    "Phone",
    "PolicyError",
    "RateLimitError",
    "RateLimiter",
    "RetryPolicy",
    "Secret",
    "SentMessage",
    "ServerError",
    "SessionPool",
    "SpamRateLimitError",
    "SuppressedError",
    "Suppression",
    "SuppressionList",
    "Template",
    "TemplateHaltedError",
    "TemplateMessage",
    "TextMessage",
    "TextParameter",
    "TransportError",
    "UnreachableError",
    "Url",
    "UserRef",
    "ValidationError",
    "VideoParameter",
    "WindowClosedError",
    "__version__",
    "message_key",
]
