"""The README's examples run exactly as written, against the fake started as the README says.

The fake is the standalone process of the README's ``readme-fake`` block (only its port is
swapped for a free one), and the examples get the variables of its ``readme-env`` block.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_user_tests

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
RUNNABLE = [b for b in BLOCKS if "asyncio.run(main())" in b]
PYTEST_EXAMPLES = [b for b in BLOCKS if "dialog360_fake" in b]
DOCUMENTED_PORT = "8360"


def _marked(marker: str) -> str:
    found = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", TEXT, flags=re.S)
    assert found, f"README lost its {marker} block"
    return found.group(1)


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _documented_env(port: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _marked("readme-env").splitlines():
        words = shlex.split(line)
        assert words and words[0] == "export", line
        for word in words[1:]:
            name, _, value = word.partition("=")
            env[name] = value.replace(f":{DOCUMENTED_PORT}", f":{port}")
    return env


@pytest.fixture(scope="module")
def standalone_fake() -> Iterator[tuple[str, dict[str, str]]]:
    [command] = [c for c in _marked("readme-fake").splitlines() if c.strip()]
    words = shlex.split(command)
    assert words[:2] == ["dialog360", "fake-server"], command
    port = _free_port()
    args = [a.replace(DOCUMENTED_PORT, port) for a in words[2:]]
    # `dialog360` is `python -m dialog360_async`; the module form needs no PATH entry.
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialog360_async", "fake-server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", url
        yield url, _documented_env(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _stats(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_fake/stats", timeout=10) as answer:
        data: dict[str, object] = json.load(answer)
        return data


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_fake/reset?state=1", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) == 6
    assert len(PYTEST_EXAMPLES) == 1


async def _run(code: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    script = cwd / "example.py"
    script.write_text(code)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "code", RUNNABLE, ids=["cloud", "template", "on-premise", "partner", "bulk", "policy"]
)
async def test_quickstart_runs_against_the_documented_fake(
    code: str, tmp_path: Path, standalone_fake: tuple[str, dict[str, str]]
) -> None:
    url, env = standalone_fake
    _reset(url)
    returncode, out, err = await _run(code, tmp_path, env)
    assert returncode == 0, err
    assert "blocked" in out or "sent:      200" in out or "template wamid." in out, out
    if "CampaignPolicy" in code:
        assert "skipped:   1\n" in out and "as templates: 200" in out, out
        assert "suppressed: 4915100000000 asked us to stop" in out, out
    stats = _stats(url)
    requests = stats["requests"]
    assert isinstance(requests, dict) and requests["total"] > 0, stats
    assert requests["unmatched"] == 0, stats


async def test_bulk_example_says_what_a_second_run_skips(
    tmp_path: Path, standalone_fake: tuple[str, dict[str, str]]
) -> None:
    url, env = standalone_fake
    _reset(url)
    [bulk] = [b for b in RUNNABLE if "broadcast.db" in b]
    first = await _run(bulk, tmp_path, env)
    second = await _run(bulk, tmp_path, env)
    assert first[0] == 0 and second[0] == 0, first[2] + second[2]
    assert "skipped:   200" in second[1] and "earlier run" in second[1], second[1]
    sends = _stats(url)["sends"]
    assert isinstance(sends, dict) and sends["total"] == 200 and sends["duplicate_sends"] == 0


def test_pytest_example_runs_as_a_users_test(tmp_path: Path) -> None:
    proc = run_user_tests(tmp_path, PYTEST_EXAMPLES[0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
