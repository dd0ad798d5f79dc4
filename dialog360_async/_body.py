"""``read_capped``: an HTTP body read with a cap, for the clients' answers and the receiver's
webhooks alike (chunked bodies have no length to refuse them by); ``small_reads`` and
``Connector`` for the connections they come on."""

from __future__ import annotations

from typing import Any, Final

import aiohttp
from aiohttp import StreamReader
from aiohttp.connector import Connection

__all__ = ["READ_SIZE", "Connector", "buffered", "read_capped", "small_reads"]

READ_SIZE: Final = 64 * 1024  # bytes a connection reads at a time: under glibc's mmap threshold


def small_reads(transport: object) -> None:
    """Make an asyncio socket transport read at most :data:`READ_SIZE` bytes at a time.

    asyncio's selector transport reads into a new 256 KiB ``bytes`` each time and shrinks it to
    what came. That size is past glibc's mmap threshold (128 KiB, unless a free raised it), so
    once the heap has no such room free, each read of an answer or a webhook is an mmap, an
    mremap, a munmap and a page fault: sending and reading 400 bytes on a socketpair cost 15.6 us,
    2.4 us at 64 KiB (2026-12-04). Transports without the attribute (uvloop's, TLS) are left
    alone.
    """
    if getattr(transport, "max_size", 0) > READ_SIZE:
        setattr(transport, "max_size", READ_SIZE)  # noqa: B010 - not in asyncio's types


class Connector(aiohttp.TCPConnector):
    """The clients' connector: its connections read as :func:`small_reads` says.

    Set on each request's connection, not in the response: a small answer has come whole, and
    its connection gone back to the pool, by the time the response is handed over.
    """

    async def connect(self, *args: Any, **kwargs: Any) -> Connection:
        # Passed on whole: a release of aiohttp that adds a parameter must not break every send.
        connection = await super().connect(*args, **kwargs)
        small_reads(connection.transport)
        return connection


def buffered(content: StreamReader, cap: int) -> tuple[bytes, bool] | None:
    """What :func:`read_capped` returns, when the whole body has come (the usual case for a
    small one: it came with the headers); else None, and nothing is read."""
    if not content.is_eof():
        return None
    body = content.read_nowait()
    return (body, True) if len(body) <= cap else (body[:cap], False)


async def read_capped(content: StreamReader, cap: int) -> tuple[bytes, bool]:
    """``(body, True)``, or ``(a prefix of it, False)`` as soon as it passes ``cap`` bytes: never
    more than ``cap`` bytes (plus one chunk) in memory."""
    if (whole := buffered(content, cap)) is not None:
        return whole
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > cap:
            # A prefix is all an error message can use; joining megabytes would double them.
            return (chunks[0] if chunks else chunk)[:cap], False
        chunks.append(chunk)
    return b"".join(chunks), True
