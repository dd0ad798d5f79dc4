"""Per-channel state of the fake: blocklist, engagement and rate limiters."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._webhook_config import Target


class TokenBucket:
    """A token bucket whose rate is read on every take, so it can change between calls."""

    __slots__ = ("_stamp", "_tokens")

    def __init__(self) -> None:
        self._tokens = 0.0
        self._stamp: float | None = None

    def take(self, rate: float, now: float) -> bool:
        """Take one token at ``rate`` per second (burst = rate, at least 1); False if empty."""
        capacity = max(rate, 1.0)
        if self._stamp is None:
            self._tokens = capacity
        else:
            self._tokens = min(capacity, self._tokens + max(0.0, now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class SlidingWindow:
    """At most N accepted hits in any window of S seconds (the gateway's per-key limit)."""

    __slots__ = ("_hits",)

    def __init__(self) -> None:
        self._hits: deque[float] = deque()

    def hit(self, limit: int, seconds: float, now: float) -> bool:
        """Record a hit if the window has room; False (and nothing recorded) otherwise."""
        while self._hits and self._hits[0] <= now - seconds:
            self._hits.popleft()
        if len(self._hits) >= limit:
            return False
        self._hits.append(now)
        return True


class Channel:
    """One WhatsApp number: what it has blocked, who is engaged, its limiters and webhook."""

    __slots__ = (
        "api",
        "blocked",
        "bucket",
        "engaged",
        "gateway",
        "label",
        "last_send",
        "serial",
        "webhook",
    )

    def __init__(self, label: str, serial: int = 0) -> None:
        self.label = label
        self.serial = serial  # numbers its Meta ids in webhooks
        # Set with POST /v1/configs/webhook (or set_webhook); configuration, kept by clear().
        self.webhook: Target | None = None
        # The API of its last send while webhooks were on: the shape of its inbound webhooks.
        self.api: Literal["cloud", "on_premise"] | None = None
        # wa_id -> the input it was first blocked with; dict order is the listing order.
        self.blocked: dict[str, str] = {}
        self.engaged: set[str] = set()
        self.last_send: dict[str, float] = {}
        self.bucket = TokenBucket()
        self.gateway = SlidingWindow()

    def reset_limits(self) -> None:
        """Forget rate-limiter history."""
        self.last_send.clear()
        self.bucket = TokenBucket()
        self.gateway = SlidingWindow()

    def __repr__(self) -> str:
        return f"<Channel {self.label} blocked={len(self.blocked)} engaged={len(self.engaged)}>"


class Channels:
    """Channels by API key and by partner channel id; keys never leave this object."""

    def __init__(self, api_keys: Iterable[str] | None) -> None:
        self._allowed = None if api_keys is None else frozenset(api_keys)
        self._by_key: dict[str, Channel] = {}
        self._by_partner_id: dict[str, Channel] = {}
        self._serial = 0

    def _new(self, label: str | None = None) -> Channel:
        self._serial += 1
        return Channel(label or f"channel-{self._serial}", self._serial)

    @staticmethod
    def _fresh(channel: Channel) -> Channel:
        fresh = Channel(channel.label, channel.serial)
        fresh.webhook = channel.webhook
        return fresh

    def accepts(self, api_key: str) -> bool:
        """Whether requests with this key authenticate."""
        if not api_key:
            return False
        return self._allowed is None or api_key in self._allowed or api_key in self._by_key

    def for_key(self, api_key: str, *, create: bool = True) -> Channel | None:
        """The channel of a valid key (created on first use), or None for an invalid one."""
        channel = self._by_key.get(api_key)
        if channel is None and create and self.accepts(api_key):
            channel = self._by_key[api_key] = self._new()
        return channel

    def register_key(self, api_key: str) -> Channel:
        """Create (or return) the channel of a key even if it is outside ``api_keys``."""
        channel = self._by_key.get(api_key)
        if channel is None:
            channel = self._by_key[api_key] = self._new()
        return channel

    def add_partner(self, channel_id: str, api_key: str | None) -> Channel:
        """Expose a channel through the Partner API, sharing the key's state if given."""
        if api_key is not None:
            channel = self.register_key(api_key)
        else:
            channel = self._by_partner_id.get(channel_id) or self._new(channel_id)
        self._by_partner_id[channel_id] = channel
        return channel

    def partner(self, channel_id: str) -> Channel | None:
        """The channel behind a partner channel id, if registered."""
        return self._by_partner_id.get(channel_id)

    def __iter__(self) -> Iterator[Channel]:
        seen: set[int] = set()
        for channel in (*self._by_key.values(), *self._by_partner_id.values()):
            if id(channel) not in seen:
                seen.add(id(channel))
                yield channel

    def clear(self) -> None:
        """Drop every channel's state; keys, partner ids and webhooks stay as they are."""
        for channel_id, channel in list(self._by_partner_id.items()):
            shared = any(channel is other for other in self._by_key.values())
            if not shared:
                self._by_partner_id[channel_id] = self._fresh(channel)
        for key, channel in list(self._by_key.items()):
            fresh = self._fresh(channel)
            for channel_id, partner in list(self._by_partner_id.items()):
                if partner is channel:
                    self._by_partner_id[channel_id] = fresh
            self._by_key[key] = fresh

    def __repr__(self) -> str:
        return f"<Channels count={sum(1 for _ in self)}>"
