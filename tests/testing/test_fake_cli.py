"""The standalone fake server: ``python -m dialog360_async.testing`` and ``dialog360 fake-server``
as subprocesses, and main() directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dialog360_async.testing.__main__ import _without_values, main

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-SECRET-0123456789abcdef"
TESTING = ("-m", "dialog360_async.testing")
CLI = ("-m", "dialog360_async", "fake-server")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Server:
    """A standalone fake in a subprocess; ``stderr`` is filled in once it has stopped."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url
        self.stderr = b""


@contextlib.asynccontextmanager
async def serve(*args: str, entry: tuple[str, ...] = TESTING) -> AsyncIterator[Server]:
    """Start the fake on a free port, yield it once it prints its URL, stop it with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *entry,
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        server = Server(process, url)
        yield server
        process.send_signal(signal.SIGTERM)
        stdout, server.stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, server.stderr
        assert SECRET.encode() not in line + stdout + server.stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _text(session: aiohttp.ClientSession, method: str, url: str) -> str:
    async with session.request(method, url) as response:
        assert response.status == 200
        return await response.text()


async def _send(session: aiohttp.ClientSession, url: str, key: str, to: str) -> int:
    body = {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "location",
        "location": {"latitude": 1.0, "longitude": 2.0},
    }
    async with session.post(url + "/messages", json=body, headers={"D360-API-KEY": key}) as r:
        return r.status


async def test_standalone_server_subprocess(session: aiohttp.ClientSession) -> None:
    args = ("--engage-all", "--throughput", "0", "--partner-channel", "exampleCH")
    async with serve(*args) as server:
        body = {"messaging_product": "whatsapp", "block_users": [{"user": "+15550001"}]}
        async with session.post(
            server.url + "/block_users", json=body, headers={"D360-API-KEY": "k"}
        ) as response:
            assert response.status == 200  # --engage-all took effect
    assert b"Ctrl-C" in server.stderr
    assert f"{server.url}/_fake/stats".encode() in server.stderr


async def test_standalone_stats_record_limit_and_reset(session: aiohttp.ClientSession) -> None:
    other = SECRET + "-two"
    args = ("--api-key", SECRET, "--api-key", other, "--throughput", "0")
    async with serve(*args, "--pair-rate-limit", "3600", "--record-limit", "2") as server:
        assert await _send(session, server.url, SECRET, "+1 555 0001") == 200
        assert await _send(session, server.url, other, "15550001") == 200  # a duplicate
        assert await _send(session, server.url, SECRET, "15550001") == 400  # pair limit
        assert await _send(session, server.url, "not-a-key", "15550002") == 401
        raw_stats = await _text(session, "GET", server.url + "/_fake/stats")
        raw_requests = await _text(session, "GET", server.url + "/_fake/requests")
        for raw in (raw_stats, raw_requests):
            assert SECRET not in raw
            assert "not-a-key" not in raw
        stats: Any = json.loads(raw_stats)
        assert stats["requests"]["total"] == 4
        assert stats["requests"]["by_route"] == {"POST /messages": 4}
        assert stats["sends"] == {
            "total": 2,
            "recipients": 1,
            "duplicate_sends": 1,
            "duplicates": {"15550001": 2},
        }
        assert stats["throttled"] == {"total": 1, "by_reason": {"131056": 1}}
        assert stats["responses"]["by_status"] == {"200": 2, "400": 1, "401": 1}
        assert stats["recorded"] == {"enabled": True, "kept": 2, "limit": 2, "dropped": 2}
        assert stats["channels"] == 2
        recorded = json.loads(raw_requests)
        assert [r["json"]["to"] for r in recorded] == ["15550001", "15550002"]
        assert {r["headers"]["D360-API-KEY"] for r in recorded} == {"***"}
        await _text(session, "POST", server.url + "/_fake/reset")
        stats = json.loads(await _text(session, "GET", server.url + "/_fake/stats"))
        assert stats["requests"]["total"] == stats["sends"]["total"] == 0
        assert stats["recorded"]["kept"] == stats["recorded"]["dropped"] == 0


async def test_cli_fake_server_records_by_default(session: aiohttp.ClientSession) -> None:
    async with serve(entry=CLI) as server:
        assert await _send(session, server.url, SECRET, "15550001") == 200
        stats = json.loads(await _text(session, "GET", server.url + "/_fake/stats"))
        assert stats["recorded"] == {"enabled": True, "kept": 1, "limit": 10_000, "dropped": 0}
        assert stats["sends"]["total"] == 1


async def test_no_record_still_counts(session: aiohttp.ClientSession) -> None:
    async with serve("--no-record") as server:
        assert await _send(session, server.url, SECRET, "15550001") == 200
        assert await _send(session, server.url, SECRET, "15550001") == 200
        stats = json.loads(await _text(session, "GET", server.url + "/_fake/stats"))
        assert stats["recorded"] == {"enabled": False, "kept": 0, "limit": 10_000, "dropped": 0}
        assert stats["sends"]["duplicates"] == {"15550001": 2}
        assert json.loads(await _text(session, "GET", server.url + "/_fake/requests")) == []


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("entry", "prog"),
    [(TESTING, "python -m dialog360_async.testing"), (CLI, "dialog360 fake-server")],
)
def test_help_names_the_program(entry: tuple[str, ...], prog: str) -> None:
    proc = _run(*entry, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {prog} "), proc.stdout[:200]
    assert "--record-limit N" in proc.stdout
    assert "/_fake/stats" in proc.stdout


def test_main_takes_the_program_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"], prog="dialog360 fake-server")
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.startswith("usage: dialog360 fake-server ")
    with pytest.raises(SystemExit):
        main(["--port", "x"], prog="dialog360 fake-server")
    assert "dialog360 fake-server: error: argument --port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--port", SECRET], "argument --port: invalid int value"),
        ([f"--port={SECRET}"], "argument --port: invalid int value"),
        (["--throughput", SECRET], "argument --throughput: invalid float value"),
        ([f'--pair-rate-limit=it\'s "{SECRET}"'], "argument --pair-rate-limit: invalid float"),
        (["--record-limit", SECRET], "argument --record-limit: expected a whole number"),
        (["--gateway-limit", SECRET], "argument --gateway-limit: expected REQUESTS/SECONDS"),
        (["--list-shape", SECRET], "argument --list-shape: invalid choice (choose from "),
        ([f"--engage-all={SECRET}"], "argument --engage-all: ignored explicit argument"),
        ([f"--p={SECRET}"], "ambiguous option: --p could match --port, --pair-rate-limit"),
        (["--bogus", SECRET], "unrecognized arguments: --bogus"),
        ([f"--bogus={SECRET}"], "unrecognized arguments: --bogus"),
        (["--api-key", "k", SECRET], "unrecognized arguments (values not shown)"),
        (["--api-key", SECRET, "--port", "eighty"], "argument --port: invalid int value"),
    ],
)
def test_usage_errors_never_echo_a_value(
    capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "eighty" not in captured.err
    assert shown in captured.err


@pytest.mark.parametrize(
    "message",
    [  # shapes of other Python versions
        f"argument --list-shape: invalid choice: '{SECRET}' (choose from 360dialog, meta)",
        f"argument --list-shape: invalid choice: '{SECRET}', maybe you meant 'meta'? "
        "(choose from 360dialog, meta)",
        f'argument --port: invalid int value: "{SECRET}\'"',
        f"unrecognized arguments: {SECRET} --x={SECRET} -{SECRET}",
        f"ambiguous option: --p={SECRET} could match --port, --pair-rate-limit",
    ],
)
def test_without_values(message: str) -> None:
    cleaned = _without_values(message)
    assert SECRET not in cleaned
    assert cleaned.split(":")[0] == message.split(":")[0]


def test_cli_usage_error_never_echoes_the_key() -> None:
    proc = _run(*CLI, "--api-key", SECRET, "--port", SECRET)
    assert proc.returncode == 2
    assert SECRET not in proc.stdout + proc.stderr
    assert "argument --port: invalid int value" in proc.stderr


def test_main_reports_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert "error:" in capsys.readouterr().err


def test_main_rejects_bad_gateway_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--gateway-limit", "many"])
    assert excinfo.value.code == 2
    assert "REQUESTS/SECONDS" in capsys.readouterr().err
