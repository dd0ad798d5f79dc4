"""The pytest plugin module, loaded with ``-p`` in a child pytest (not as an entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "dialog360_async.testing.pytest_plugin"

USES_FIXTURES = """
import aiohttp
import pytest

from dialog360_async import Dialog360Client, Location
from dialog360_async.testing import FakeDialog360


@pytest.mark.asyncio
async def test_fake(dialog360_fake):
    assert isinstance(dialog360_fake, FakeDialog360)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            dialog360_fake.url + "/block_users", headers={"D360-API-KEY": "k"}
        ) as response:
            assert response.status == 200


@pytest.mark.asyncio
async def test_client(dialog360_client, dialog360_fake):
    assert isinstance(dialog360_client, Dialog360Client)
    await dialog360_client.send_location("+15550001", Location(latitude=1.5, longitude=2.5))
    assert dialog360_fake.sends == {"15550001": 1}
"""


def _run_pytest(
    tmp_path: Path, *args: str, pythonpath: list[str]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_uses_plugin.py").write_text(USES_FIXTURES)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(REPO)])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", PLUGIN, *args, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fixtures_with_pytest_asyncio(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, "-p", "pytest_asyncio.plugin", pythonpath=[])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_fixtures_without_pytest_asyncio(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    (blocker / "pytest_asyncio").mkdir(parents=True)
    (blocker / "pytest_asyncio" / "__init__.py").write_text(
        "raise ImportError('pytest-asyncio is not installed (simulated)')\n"
    )
    result = _run_pytest(tmp_path, pythonpath=[str(blocker)])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "needs pytest-asyncio" in output
    assert "2 error" in output
