"""The rate limit of a channel (one API key), shared by every client of that key in a process.

WhatsApp limits throughput per phone number, 80 msg/s by default (design.md, "Broadcasts that
behave"): two clients of one key pacing themselves at 80 msg/s each would send 160 and be
throttled. So by default every client of a key draws from one adaptive limiter.

The registry holds no API key: it is keyed by a keyed BLAKE2b hash of the key under a random
per-process salt, which cannot be reversed or compared across processes. It keeps a limiter
after its last client is gone (a web service that makes a client per request must still be
paced), but when it grows large it forgets limiters that are at rest at the default rate:
one made anew behaves the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable

from ._ratelimit import RateLimiter
from ._secret import Secret

__all__ = ["DEFAULT_RATE", "ChannelLimits", "channel_limits"]

DEFAULT_RATE = 80.0  # WhatsApp's default throughput per phone number, msg/s
_SALT = os.urandom(32)
_PRUNE_AT = 1024  # limiters kept before the first look for resting ones


def _digest(key: Secret) -> bytes:
    # One expression: no local of this frame ever holds the key in clear text.
    return hashlib.blake2b(key.reveal().encode(), key=_SALT, digest_size=16).digest()


class ChannelLimits:
    """The per-channel limiters of one process.

    Args:
        clock: the limiters' monotonic clock; injectable for tests.
        sleep: the limiters' sleep; injectable for tests.
    """

    __slots__ = ("_clock", "_kept", "_live", "_lock", "_prune_at", "_sleep")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        # Every limiter some client still holds, so that a pruned one is never doubled...
        self._live: weakref.WeakValueDictionary[bytes, RateLimiter] = weakref.WeakValueDictionary()
        # ...and the ones kept for clients yet to come.
        self._kept: dict[bytes, RateLimiter] = {}
        self._prune_at = _PRUNE_AT
        self._lock = threading.Lock()  # clients may be built in several threads at once

    def limiter(self, key: Secret) -> RateLimiter:
        """The limiter of the channel of ``key``, made at 80 msg/s on first use."""
        digest = _digest(key)
        with self._lock:
            found = self._live.get(digest)
            if found is None:
                found = RateLimiter(DEFAULT_RATE, clock=self._clock, sleep=self._sleep)
                self._live[digest] = found
            if digest not in self._kept:
                self._kept[digest] = found
                if len(self._kept) >= self._prune_at:
                    self._prune()
        return found

    def _prune(self) -> None:
        self._kept = {
            digest: limiter
            for digest, limiter in self._kept.items()
            if not (limiter.at_rest and limiter.configured_rate == DEFAULT_RATE)
        }
        self._prune_at = max(_PRUNE_AT, 2 * len(self._kept))

    def clear(self) -> None:
        """Forget every limiter (for test suites: clients made later start afresh; clients
        that exist keep theirs)."""
        with self._lock:
            self._live.clear()
            self._kept.clear()
            self._prune_at = _PRUNE_AT

    def __len__(self) -> int:
        return len(self._live)

    def __repr__(self) -> str:
        return f"ChannelLimits(channels={len(self._live)})"


channel_limits = ChannelLimits()
"""The process's registry; ``channel_limits.clear()`` isolates tests from each other."""
