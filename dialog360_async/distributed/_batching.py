"""Many callers' Redis work in one round trip: what queues while one call is in flight goes next.

A lone caller goes at once (no added latency); under load, every claim or settle asked for
while the previous script ran is sent in the next one, so the round trips per message fall as
the concurrency rises, with no timer to tune.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer"]

_T = TypeVar("_T")
_R = TypeVar("_R")

Done = Callable[[_T, BaseException | None], None]
"""What a :meth:`Coalescer.put` item's call ends with: the item and the error (None: success)."""


class Coalescer(Generic[_T, _R]):
    """Runs ``call(items)`` for the items submitted meanwhile, at most ``limit`` per call.

    ``call`` gets the items in the order they were submitted and returns one result per item;
    an exception it raises is each of its callers'. A caller that is cancelled does not cancel
    the call it is part of (the others wait for it too): it only stops waiting for it.
    """

    def __init__(self, call: Callable[[list[_T]], Awaitable[Sequence[_R]]], limit: int) -> None:
        self._call = call
        self._limit = limit
        self._queue: list[tuple[_T, asyncio.Future[_R] | Done[_T]]] = []
        self._drain: asyncio.Task[None] | None = None

    def post(self, item: _T) -> asyncio.Future[_R]:
        """Queue ``item`` for the next call; its result, later, in the future returned."""
        future: asyncio.Future[_R] = asyncio.get_running_loop().create_future()
        self._add(item, future)
        return future

    def put(self, item: _T, done: Done[_T]) -> None:
        """Queue ``item`` for the next call, for nobody to wait on: ``done(item, error)`` is
        called when that call is over, ``error`` None if it succeeded (its result is dropped),
        a CancelledError if it was stopped or never made."""
        # No future per item: the outcomes of a bulk run go this way, one per message.
        self._add(item, done)

    def _add(self, item: _T, target: asyncio.Future[_R] | Done[_T]) -> None:
        self._queue.append((item, target))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._limit]
                del self._queue[: self._limit]
                try:
                    results = await self._call([item for item, _ in group])
                    if len(results) != len(group):
                        raise RuntimeError(f"expected {len(group)} results, got {results!r}")
                except Exception as exc:
                    _end(group, exc)
                    continue
                except asyncio.CancelledError as exc:
                    _end(group, exc)
                    raise
                for (item, target), result in zip(group, results, strict=True):
                    if not isinstance(target, asyncio.Future):
                        target(item, None)
                    elif not target.done():
                        target.set_result(result)
        finally:
            self._drain = None
            queued, self._queue = self._queue, []
            _end(queued, asyncio.CancelledError())  # stopped while they waited: no call

    async def aclose(self) -> None:
        """Stop the call in flight, if any (its callers see it cancelled)."""
        drain = self._drain
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)


def _end(group: list[tuple[_T, asyncio.Future[Any] | Done[_T]]], error: BaseException) -> None:
    """End the items of a call that raised ``error`` (a CancelledError: stopped, or never made)."""
    for item, target in group:
        if not isinstance(target, asyncio.Future):
            target(item, error)
        elif target.done():
            continue
        elif isinstance(error, asyncio.CancelledError):
            target.cancel()
        else:
            target.set_exception(error)
