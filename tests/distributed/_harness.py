"""Real processes for the distributed tests: a redis-server and `taskiq worker`s, always reaped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis

from dialog360_async import Location, LocationMessage
from dialog360_async.distributed import CampaignSummary, broadcast, make_broker
from dialog360_async.testing import FakeDialog360

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on 127.0.0.1, in a temporary directory.

    ``persistent`` turns on the append-only file (fsync on every write), so that a restart
    keeps the data; otherwise nothing is ever written to disk.
    """

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: the distributed tests need a real one "
                "(apt-get install -y redis-server)"
            )
        self.binary = binary
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        appendonly = ["--appendonly", "yes", "--appendfsync", "always"]
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            *(appendonly if self.persistent else ["--appendonly", "no"]),
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            for _ in range(100):
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill() if kill else process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, *, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


# How the tests run a worker: one process, bounded waits on the way out.
WORKER_ARGS = ("--workers", "1", "--shutdown-timeout", "3", "--wait-tasks-timeout", "3")


# taskiq runs its workers on uvloop whenever it can import it; this hides it from a worker.
_NO_UVLOOP = "import sys\n\nsys.modules['uvloop'] = None  # its import raises ImportError\n"
LOOPS = ("uvloop", "asyncio")


class Workers:
    """`taskiq worker dialog360_async.distributed:broker` processes, one process group each.

    ``loop="asyncio"`` runs them on the standard event loop although uvloop is installed.
    """

    def __init__(self, env: Mapping[str, str], logs: Path, *, loop: str = "uvloop") -> None:
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
        self.env = {**os.environ, **env}
        if loop == "asyncio":
            hook = logs / "no-uvloop"
            hook.mkdir(exist_ok=True)
            (hook / "sitecustomize.py").write_text(_NO_UVLOOP)
            path = self.env.get("PYTHONPATH")
            self.env["PYTHONPATH"] = os.pathsep.join([str(hook), *([path] if path else [])])
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def start(self, count: int, args: Sequence[str] = WORKER_ARGS) -> None:
        for _ in range(count):
            number = len(self.processes)
            log = (self.logs / f"worker-{number}.log").open("wb")
            self._files.append(log)
            command = [
                sys.executable, "-m", "taskiq", "worker", "dialog360_async.distributed:broker",
                *args,
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: a kill takes its child too
                )
            )

    def log(self, number: int) -> str:
        return (self.logs / f"worker-{number}.log").read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for number, process in enumerate(self.processes):
            while "Listening started." not in self.log(number):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {number} did not start:\n{self.log(number)}")
                time.sleep(0.1)

    def alive(self, number: int) -> bool:
        return self.processes[number].poll() is None

    def signal(self, number: int, signum: int, *, group: bool = False) -> float:
        """Send ``signum`` to a worker's main process (or its whole group, as Ctrl-C does);
        return the monotonic time it was sent."""
        process = self.processes[number]
        sent = time.monotonic()
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        return sent

    def wait_exit(self, number: int, timeout: float) -> float | None:
        """Wait up to ``timeout`` s for a worker and its children to exit; the time, or None."""
        process = self.processes[number]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_alive(process.pid):
                return time.monotonic()
            time.sleep(0.02)
        return None

    def kill(self, number: int) -> None:
        process = self.processes[number]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # stragglers, and orphaned children
            process.wait(timeout=10)
        for log in self._files:
            log.close()
        self._files.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the id
        return False
    return True


class TimedFake(FakeDialog360):
    """The bundled fake, also noting when it accepted each message (monotonic seconds)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.accepted: list[tuple[float, str]] = []

    def _count_send(self, wa_id: str) -> None:
        super()._count_send(wa_id)
        self.accepted.append((time.monotonic(), wa_id))

    def throttled(self) -> int:
        """Sends the fake refused (130429 is its only refusal in these tests)."""
        posts = sum(1 for r in self.requests if r.path == "/messages" and r.method == "POST")
        return posts - sum(self.sends.values())


async def sends_reach(fake: FakeDialog360, count: int, within: float = 30.0) -> int:
    """Wait (at most ``within`` seconds) until the fake accepted ``count`` messages."""
    for _ in range(int(within / 0.02)):
        done = sum(fake.sends.values())
        if done >= count:
            return done
        await asyncio.sleep(0.02)
    raise AssertionError(f"the fake accepted only {sum(fake.sends.values())} of {count}")


def recipient(channel: int, number: int) -> str:
    return f"+49151{channel:02d}{number:06d}"


def channel_of(wa_id: str) -> int:
    return int(wa_id[5:7])


def campaign(channels: list[str], per_channel: int) -> Iterator[tuple[str, LocationMessage]]:
    """Messages interleaved over the channels, one distinct recipient each."""
    where = Location(latitude=52.5163, longitude=13.3777, name="Brandenburg Gate")
    for number in range(per_channel):
        for index, name in enumerate(channels):
            yield name, LocationMessage(to=recipient(index, number), location=where)


def worker_env(
    redis_url: str, base_url: str, keys: Mapping[str, str], **extra: object
) -> dict[str, str]:
    env = {
        "D360_REDIS_URL": redis_url,
        "D360_BASE_URL": base_url,
        "D360_CHANNELS": ",".join(f"{name}={key}" for name, key in keys.items()),
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"D360_{name.upper()}": str(value) for name, value in extra.items()})
    return env


def rates(accepted: list[tuple[float, str]]) -> dict[int, float]:
    """Achieved msg/s per channel: (accepted - 1) / (last - first acceptance)."""
    times: dict[int, list[float]] = {}
    for stamp, wa_id in accepted:
        times.setdefault(channel_of(wa_id), []).append(stamp)
    return {ch: (len(t) - 1) / (t[-1] - t[0]) for ch, t in sorted(times.items()) if len(t) > 1}


def start_campaign(
    redis_url: str, channels: list[str], per_channel: int
) -> asyncio.Task[CampaignSummary]:
    """Broadcast ``campaign(channels, per_channel)`` in a task, as the fault tests do."""
    return asyncio.create_task(
        broadcast(
            campaign(channels, per_channel),
            broker=make_broker(redis_url),
            batch_size=50,
            poll=0.2,
            stall_timeout=60,
        )
    )
