"""The bundled fake server in its own process: free port, URL from stdout, own CPU, uvloop.

``python -m benchmarks._server ARGS`` is the child: the fake's own command line
(``python -m dialog360_async.testing``) on uvloop when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@functools.cache  # as first seen: once this process is pinned to one, it may use no other
def cpus() -> tuple[int | None, int | None]:
    """``(client CPU, server CPU)``, or Nones when this process may use fewer than two."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None, None
    available = sorted(getter(0))
    if len(available) < 2:
        return None, None
    return available[0], available[-1]


def pin(pid: int, cpu: int | None) -> bool:
    """Pin ``pid`` (0 = this process) to one CPU; False where that is not possible."""
    setter = getattr(os, "sched_setaffinity", None)
    if cpu is None or setter is None:
        return False
    try:
        setter(pid, {cpu})
    except OSError:
        return False
    return True


class FakeServer:
    """Start ``python -m benchmarks._server`` on a free port and stop it again."""

    def __init__(self, *, cpu: int | None, throughput: float = 0.0) -> None:
        self.cpu = cpu
        self.throughput = throughput
        self.url = ""
        self.pinned = False
        self._proc: subprocess.Popen[str] | None = None
        self._errors: IO[bytes] | None = None

    def start(self) -> str:
        command = [sys.executable, "-m", "benchmarks._server", "--host", "127.0.0.1"]
        command += ["--port", "0", "--throughput", str(self.throughput), "--no-record"]
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._errors, text=True, cwd=ROOT, env=env
        )
        self.pinned = pin(self._proc.pid, self.cpu)
        line = self._first_line()
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the fake server did not start: {line!r} {self._stderr()}")
        self.url = line.strip()
        return self.url

    def _first_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while (left := deadline - time.monotonic()) > 0:
                if selector.select(timeout=left):
                    return self._proc.stdout.readline()
                if self._proc.poll() is not None:
                    break
        return ""

    def _stderr(self) -> str:
        if self._errors is None:
            return ""
        self._errors.seek(0)
        return self._errors.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def uvloop_version() -> str | None:
    """The uvloop the server runs on, or None (then it runs on asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return str(uvloop.__version__)


def _serve(argv: list[str]) -> int:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from dialog360_async.testing.__main__ import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
