"""Many callers' Redis work in one round trip: what queues while one call is in flight goes next.

A lone caller goes at once (no added latency); under load, every claim or settle asked for
while the previous script ran is sent in the next one, so the round trips per message fall as
the concurrency rises, with no timer to tune.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class Coalescer(Generic[_T, _R]):
    """Runs ``call(items)`` for the items submitted meanwhile, at most ``limit`` per call.

    ``call`` gets the items in the order they were submitted and returns one result per item;
    an exception it raises is each of its callers'. A caller that is cancelled does not cancel
    the call it is part of (the others wait for it too): it only stops waiting for it.
    """

    def __init__(self, call: Callable[[list[_T]], Awaitable[Sequence[_R]]], limit: int) -> None:
        self._call = call
        self._limit = limit
        self._queue: list[tuple[_T, asyncio.Future[_R]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, item: _T) -> _R:
        """Queue ``item`` for the next call and wait for its result."""
        return await self.post(item)

    def post(self, item: _T) -> asyncio.Future[_R]:
        """Queue ``item`` for the next call; its result, later, in the future returned."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_R] = loop.create_future()
        self._queue.append((item, future))
        if self._drain is None:
            self._drain = loop.create_task(self._run())
        return future

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
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    for _, future in group:
                        future.cancel()
                    raise
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._drain = None
            for _, future in self._queue:  # cancelled while items waited: they wait no more
                future.cancel()
            self._queue.clear()

    async def aclose(self) -> None:
        """Stop the call in flight, if any (its callers see it cancelled)."""
        drain = self._drain
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
