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

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
RUNNABLE = [b for b in BLOCKS if "asyncio.run(main())" in b]


def test_readme_has_runnable_quickstarts() -> None:
    assert len(RUNNABLE) == 3


@pytest.mark.parametrize("code", RUNNABLE, ids=["cloud", "on-premise", "partner"])
async def test_quickstart_runs(code: str, tmp_path: Path) -> None:
    async with FakeDialog360(engage_all=True, api_keys=["readme-key"]) as fake:
        fake.add_partner_channel("exampleCH", api_key="readme-key")
        env = {
            **os.environ,
            "D360_API_KEY": "readme-key",
            "D360_BASE_URL": fake.url,
            "D360_PARTNER_KEY": "partner-key",
            "D360_PARTNER_URL": fake.partner_url,
        }
        script = tmp_path / "quickstart.py"
        script.write_text(code)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"blocked" in out
    assert fake.requests, "the example talked to the fake"
    assert all(
        r.path.startswith(("/messages", "/block_users", "/v1/", "/api/v2/")) for r in fake.requests
    )
