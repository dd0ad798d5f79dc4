"""The pytest plugin works in a user's project: loaded as an installed entry point, not through
our conftest, in a separate pytest run in an empty directory."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_user_tests

USER_TEST = """
import pytest

from dialog360_async import Location


@pytest.mark.asyncio
async def test_my_code_sends_a_location(dialog360_fake, dialog360_client):
    sent = await dialog360_client.send_location("+4915112345678", Location(latitude=1, longitude=2))
    assert sent.message_id.startswith("wamid.")
    assert dialog360_fake.sends["4915112345678"] == 1
    assert dialog360_fake.requests[0].path == "/messages"


@pytest.mark.asyncio
async def test_blocking_needs_engagement(dialog360_fake, dialog360_client):
    result = await dialog360_client.block_users(["+4915112345678"])
    assert [e.code for f in result.failed for e in f.errors] == [131047]
    dialog360_fake.engage("+4915112345678")
    result = await dialog360_client.block_users(["+4915112345678"])
    assert result.ok
"""


def test_fixtures_work_as_an_installed_plugin(tmp_path: Path) -> None:
    proc = run_user_tests(tmp_path, USER_TEST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
