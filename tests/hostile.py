"""A hostile HTTP/1.1 server on 127.0.0.1 for transport tests: raw bytes on a TCP socket, so
it can do what no well-behaved framework does (trickle headers a byte at a time, promise more
body than it sends, stream a gigabyte). Every behaviour is bounded and ends by itself."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

Behaviour = Callable[[asyncio.StreamWriter], Awaitable[None]]

OK_BODY = b'{"messages":[{"id":"wamid.HOSTILE"}]}'


def head(status: int = 200, *headers: str, length: int | None = None) -> bytes:
    """A response head; chunked unless ``length`` is given."""
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", *headers]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _read_request(reader: asyncio.StreamReader) -> None:
    headers = await reader.readuntil(b"\r\n\r\n")
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))


class HostileServer:
    """Answers every request with ``behaviour(writer)``, then closes the connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await _read_request(reader)
            self.requests += 1
            await self.behaviour(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up: that is often the point
        except asyncio.CancelledError:
            pass  # the server is closing; asyncio would log a cancelled connection handler
        finally:
            self._handlers.discard(task)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()


@asynccontextmanager
async def hostile(behaviour: Behaviour) -> AsyncIterator[HostileServer]:
    server = HostileServer(behaviour)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def trickle_body(interval: float, seconds: float) -> Behaviour:
    """Headers at once, then one byte of whitespace every ``interval`` for ``seconds``, then a
    valid answer: a per-read timeout never fires."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head(200))
        for _ in range(int(seconds / interval)):
            writer.write(chunk(b" "))
            await writer.drain()
            await asyncio.sleep(interval)
        writer.write(chunk(OK_BODY) + b"0\r\n\r\n")

    return behaviour


def trickle_head(interval: float, seconds: float) -> Behaviour:
    """The status line, then one byte of a header every ``interval`` for ``seconds``."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(int(seconds / interval)):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(interval)
        writer.write(b"\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY))

    return behaviour


def truncated(status: int = 200) -> Behaviour:
    """Promises 1,000 bytes, sends 20 of a valid-looking JSON start, hangs up."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, length=1000) + OK_BODY[:20])

    return behaviour


def endless(status: int = 200, total: int = 1 << 30, *, length: bool = False) -> Behaviour:
    """``total`` bytes (1 GiB by default) of generated body, chunked or with Content-Length,
    64 KiB at a time; stops as soon as the client hangs up."""
    block = b"[" + b"0," * (32 * 1024 - 1) + b"0"  # 64 KiB, never a complete JSON value

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, length=total if length else None))
        sent = 0
        while sent < total:
            writer.write(block if length else chunk(block))
            sent += len(block)
            await writer.drain()

    return behaviour


def gzip_bomb(total: int = 1 << 30) -> Behaviour:
    """A gzip body that inflates to ``total`` bytes (1 GiB: a megabyte on the wire)."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, "Content-Encoding: gzip"))
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        for _ in range(total // len(zeros)):
            packed = packer.compress(zeros)
            if packed:
                writer.write(chunk(packed))
                await writer.drain()
        writer.write(chunk(packer.flush()) + b"0\r\n\r\n")

    return behaviour
