"""``read_capped``: an HTTP body read with a cap, for the clients' answers and the receiver's
webhooks alike (chunked bodies have no length to refuse them by)."""

from __future__ import annotations

from aiohttp import StreamReader

__all__ = ["buffered", "read_capped"]


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
