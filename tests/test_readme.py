"""The README's Python examples run as written, against the bundled fake server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dialog360_async.testing import FakeDialog360

from .conftest import run_user_tests

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
RUNNABLE = [b for b in BLOCKS if "asyncio.run(main())" in b]


PYTEST_EXAMPLES = [b for b in BLOCKS if "dialog360_fake" in b]


def test_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) == 4
    assert len(PYTEST_EXAMPLES) == 1


@pytest.mark.parametrize("code", RUNNABLE, ids=["cloud", "on-premise", "partner", "bulk"])
async def test_quickstart_runs(code: str, tmp_path: Path) -> None:
    keys = ["readme-key", "readme-key-2", "readme-key-3"]
    async with FakeDialog360(engage_all=True, api_keys=keys) as fake:
        fake.add_partner_channel("exampleCH", api_key="readme-key")
        env = {
            **os.environ,
            "D360_API_KEY": "readme-key",
            "D360_API_KEYS": ",".join(keys),
            "D360_BASE_URL": fake.url,
            "D360_PARTNER_KEY": "partner-key",
            "D360_PARTNER_URL": fake.partner_url,
        }
        script = tmp_path / "example.py"
        script.write_text(code)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"blocked" in out or b"sent:      200" in out
    assert fake.requests, "the example talked to the fake"
    assert all(
        r.path.startswith(("/messages", "/block_users", "/v1/", "/api/v2/")) for r in fake.requests
    )


def test_pytest_example_runs_as_a_users_test(tmp_path: Path) -> None:
    proc = run_user_tests(tmp_path, PYTEST_EXAMPLES[0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
