"""``python -m dialog360_async.testing`` as a subprocess, and main() directly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from dialog360_async.testing.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


async def test_standalone_server_subprocess(session: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialog360_async.testing",
        "--port",
        "0",
        "--engage-all",
        "--throughput",
        "0",
        "--partner-channel",
        "exampleCH",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:")
        body = {"messaging_product": "whatsapp", "block_users": [{"user": "+15550001"}]}
        async with session.post(
            url + "/block_users", json=body, headers={"D360-API-KEY": "k"}
        ) as response:
            assert response.status == 200  # --engage-all took effect
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, stderr
        assert b"Ctrl-C" in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


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
