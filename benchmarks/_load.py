"""The webhook load generator: ``python -m benchmarks._load``, a process of its own on its own CPU.

It posts real-shaped Cloud status webhooks (Meta's envelope from the fake's own payload
builders, one status each, a distinct wamid each) over a fixed number of keep-alive HTTP/1.1
connections. Its stdin takes one JSON command a line, ``{"port", "run", "count",
"concurrency"[, "rate"]}``: it builds the ``count`` requests, prints ``ready``, waits for ``go`` and
then sends them, each connection taking the next request once its last one is answered (and,
with a ``rate`` of POSTs a second, not before that request's turn). It
prints one JSON line, ``{"wall": seconds, "cpu": its own CPU seconds, "latencies": [...]}``, a
latency being the time from writing a request to reading its answer, which must be 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from dialog360_async.testing._payloads import ChannelIds, cloud_body, status

TOKEN = "bench-webhook-token"
PATH = "/webhook"
RECIPIENT = "4917600000001"
TIMESTAMP = 1767225600
_VALUES = ("sent", "delivered", "read")
_FAILED_EVERY = 100  # one status in a hundred is a failed one (an undeliverable message)
_MARKS = ("@WAMID@", "@TAG@")


def wamid(run: str, n: int) -> str:
    """The wamid of status ``n`` of ``run`` (a wamid's usual length and alphabet)."""
    return f"wamid.HBgLNDkxNzYwMDAwMDAxFQIAERgS{run}{n:09d}"


def _template(value: str, code: int | None) -> tuple[str, str, str]:
    item = status(
        "cloud",
        message_id=_MARKS[0],
        value=value,
        wa_id=RECIPIENT,
        timestamp=TIMESTAMP,
        callback_data=_MARKS[1],
        code=code,
        template=True,
    )
    text = json.dumps(
        cloud_body(ChannelIds(1), "statuses", [item], "change"), separators=(",", ":")
    )
    head, rest = text.split(_MARKS[0])
    middle, tail = rest.split(_MARKS[1])
    return head, middle, tail


_TEMPLATES = [_template(value, None) for value in _VALUES]
_FAILED = _template("failed", 131026)


def body(run: str, n: int) -> bytes:
    """The webhook body of status ``n`` of ``run``: sent, delivered and read in turn."""
    head, middle, tail = _FAILED if n % _FAILED_EVERY == _FAILED_EVERY - 1 else _TEMPLATES[n % 3]
    return f"{head}{wamid(run, n)}{middle}b:bench|k:{run}-{n}{tail}".encode()


def requests(run: str, count: int, port: int) -> list[bytes]:
    """Every POST of a run, whole (head and body), built before the clock starts."""
    out = []
    for n in range(count):
        payload = body(run, n)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: {TOKEN}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        out.append(head + payload)
    return out


async def post_all(
    port: int, batch: list[bytes], concurrency: int, rate: float | None = None
) -> list[float]:
    """Send ``batch`` over ``concurrency`` connections, request ``k`` not before ``k / rate``
    seconds (with a ``rate``); the latency of each answer."""
    queue = enumerate(batch)
    latencies: list[float] = []
    begun = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for k, request in queue:
                if rate is not None and (delay := begun + k / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"answer {head[:40]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    def say(message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    while line := await stdin.readline():
        command: dict[str, Any] = json.loads(line)
        port = int(command["port"])
        batch = requests(str(command["run"]), int(command["count"]), port)
        say("ready")
        if (await stdin.readline()).strip() != b"go":
            return
        cpu, started = time.process_time(), time.perf_counter()
        latencies = await post_all(port, batch, int(command["concurrency"]), command.get("rate"))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        say(json.dumps({"wall": wall, "cpu": cpu, "latencies": latencies}))


def main() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
