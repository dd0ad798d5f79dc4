"""A channel's gate in a bulk run: its shared backoff, its outage clock, and its halt.

Throttling and failures that provably sent nothing are the channel's trouble, not the
message's: every worker of the channel waits out one shared pause and the message keeps its
place (design.md, "Broadcasts that behave"). The pause grows once per round of failures, not
once per worker that saw it, and a success ends it. A channel that stays unreachable for
``outage_timeout`` is down: its remaining messages fail with :class:`UnreachableError`. A
credential or permission failure halts it at once. The retry middleware checks the gate before
every attempt, after the rate permit, so a halt or an outage stops requests already waiting.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from ._attempt import Failure
from ._codes import ACCOUNT_LOCKED, DISABLED
from ._retry import RetryPolicy
from .errors import (
    APIError,
    AuthenticationError,
    DeliveryUnknownError,
    Dialog360Error,
    PairRateLimitError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
    TransportError,
    UnreachableError,
)

__all__ = ["Gate", "halts_channel", "unsent_by_gate", "waits"]


def halts_channel(error: BaseException) -> bool:
    """Whether ``error`` concerns the channel, not the message: every later send through that
    key would fail the same way (401, 403, codes 0 and 190, a disabled channel, a locked
    account, the spam limit), so a broadcast stops sending through it (design.md, "Broadcasts
    that behave")."""
    if isinstance(error, AuthenticationError | PermissionDeniedError | SpamRateLimitError):
        return True
    return isinstance(error, APIError) and (
        error.code == ACCOUNT_LOCKED or DISABLED in (error.message or "").lower()
    )


def waits(error: BaseException) -> bool:
    """Whether ``error`` means "not now": throttled, or nothing reached the server.

    A message that failed so was provably not processed and may be sent again (design.md's
    retry rule): 429 and the throughput codes, 502/503 and the unavailable codes, and a
    connection that failed before the request left. (A Failure of an attempt waits when it is
    retryable and not sent: the same rule before the error is made.)
    """
    if isinstance(error, PairRateLimitError):
        return False  # only that recipient waits (its own spacing)
    if isinstance(error, RateLimitError):
        return True
    if isinstance(error, ServerError):
        return not error.ambiguous
    return (
        type(error) is TransportError and not error.sent and error.retryable
    )  # not a DeliveryUnknownError, a closed client or a passed deadline


class Gate:
    """The shared state of one channel's workers; see the module docstring.

    Args:
        policy: the channel client's retry policy (its backoff bounds and random).
        outage_timeout: seconds of failures without a success after which it is down.
        clock: monotonic seconds.
        sleep: waits out a pause.
    """

    __slots__ = (
        "_clock",
        "_policy",
        "_sleep",
        "down",
        "failing_since",
        "halted",
        "outage_timeout",
        "round",
        "strikes",
        "until",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        outage_timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._policy = policy
        self.outage_timeout = outage_timeout
        self._clock = clock
        self._sleep = sleep
        self.until = -math.inf  # paused until this time
        self.round = 0  # pauses so far: failures of attempts made before the last one add none
        self.strikes = 0  # pauses since the last success
        self.failing_since: float | None = None  # the first failure since the last success
        self.halted: Dialog360Error | None = None  # a credential or permission failure
        self.down: UnreachableError | None = None  # unreachable for outage_timeout

    @property
    def closed(self) -> Dialog360Error | None:
        """Why nothing more is sent through the channel, if so."""
        return self.halted or self.down

    def paused(self) -> bool:
        """Whether the channel waits now (checked before every send: no coroutine for it)."""
        return self.until > self._clock()

    async def wait(self) -> None:
        """Wait while the channel is paused."""
        while self.closed is None and (delay := self.until - self._clock()) > 0:
            await self._sleep(delay)

    def check(self) -> Failure | None:
        """A Failure for an attempt about to be made through a closed channel (nothing sent)."""
        closed = self.closed
        if closed is None:
            return None
        return Failure("Closed", f"channel closed: {closed}", sent=False, retryable=False)

    def failed(self, cause: object, retry_after: float | None, round: int) -> bool:
        """Note a failure that :func:`waits` allows (``cause``: the error, for the outage's
        message), from an attempt made in pause ``round``; True when the message may try again
        once the pause is over, False when the channel is now down."""
        if self.closed is not None:
            return False
        now = self._clock()
        if self.failing_since is None:
            self.failing_since = now
        left = self.failing_since + self.outage_timeout - now
        if left <= 0:
            self.down = UnreachableError(
                f"unreachable for {now - self.failing_since:.1f} s (outage_timeout "
                f"{self.outage_timeout:g} s); last error: {cause}"
            )
            return False
        if round == self.round:  # the first failure of this round pauses; the others join it
            self.round += 1
            self.strikes += 1
            policy = self._policy
            ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(self.strikes, 32))
            delay = ceiling * (0.5 + 0.5 * policy.random())  # never ~0: the pause must hold
            if retry_after is not None and retry_after > delay:
                delay = min(float(retry_after), policy.max_retry_after)
            # The outage ends on time: the last pause stops at the timeout, and one more
            # attempt decides.
            self.until = max(self.until, now + min(delay, left))
        return True

    def succeeded(self) -> None:
        """Note that the server answered: the outage clock and the backoff start over."""
        self.failing_since = None
        self.strikes = 0

    def halt(self, error: Dialog360Error) -> None:
        """Stop the channel for good (a credential, permission or account failure)."""
        if self.halted is None:
            self.halted = error


def unsent_by_gate(error: BaseException, gate: Gate) -> bool:
    """Whether ``error`` is the gate's own refusal (or came as the channel closed): not sent."""
    return (
        gate.closed is not None
        and isinstance(error, TransportError)
        and not isinstance(error, DeliveryUnknownError)
        and not error.sent
    )
