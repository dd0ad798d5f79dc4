from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialog360_async import Dialog360Client, OnPremiseClient, PartnerClient
from dialog360_async._channels import channel_limits
from dialog360_async.testing import FakeDialog360

API_KEY = "k3y-s3cr3t-0123456789abcdef"
PARTNER_KEY = "p4rtner-s3cr3t-fedcba9876543210"


@pytest.fixture(autouse=True)
def _fresh_channel_limits() -> Iterator[None]:
    """Every test starts with no per-channel limiter: the registry is process-wide, so a test
    that re-rates or slows down one key's channel would otherwise pace the tests after it."""
    channel_limits.clear()
    yield
    channel_limits.clear()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDialog360]:
    async with FakeDialog360(
        api_keys=[API_KEY], partner_api_key=PARTNER_KEY, throughput=None
    ) as server:
        server.add_partner_channel("exampleCH", api_key=API_KEY)
        yield server


@pytest.fixture
async def cloud(fake: FakeDialog360) -> AsyncIterator[Dialog360Client]:
    async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as client:
        yield client


@pytest.fixture
async def onprem(fake: FakeDialog360) -> AsyncIterator[OnPremiseClient]:
    async with OnPremiseClient(API_KEY, base_url=fake.url, retry=None) as client:
        yield client


@pytest.fixture
async def partner(fake: FakeDialog360) -> AsyncIterator[PartnerClient]:
    async with PartnerClient(
        partner_id="examplePA", api_key=PARTNER_KEY, base_url=fake.partner_url, retry=None
    ) as client:
        yield client


def run_user_tests(directory: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a user's test file with pytest in an empty directory, so only the
    installed plugin (not our conftest) provides fixtures."""
    (directory / "test_user.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
