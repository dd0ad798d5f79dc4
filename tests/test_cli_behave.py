"""``dialog360 broadcast`` when things go wrong, as real processes: a wrong key stops at the
first answers (exit 3), a closed port ends ``unreachable`` after ``--outage-timeout`` (exit 1),
and ``--rate 0`` against a server that enforces 80 msg/s is slower, never lossy (exit 0)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY
from .test_cli import _env, _run


def _input(path: Path, count: int) -> Path:
    lines = (
        json.dumps({"to": f"+1650{n:07d}", "location": {"latitude": 1.5, "longitude": 2.5}})
        for n in range(count)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def _results(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_wrong_key_stops_at_the_first_answers_and_exits_3(
    fake: FakeDialog360, tmp_path: Path
) -> None:
    source, out = _input(tmp_path / "in.jsonl", 3000), tmp_path / "out.jsonl"
    started = time.monotonic()
    code, _, err = await _run(
        "broadcast",
        str(source),
        "--output",
        str(out),
        env=_env(D360_API_KEY="wrongkey", D360_BASE_URL=fake.url),
    )
    elapsed = time.monotonic() - started
    requests = fake.stats()["requests"]["total"]
    print(f"wrong key: {requests} requests, {elapsed:.2f} s")
    assert code == 3, err
    assert 1 <= requests <= 32  # at most one per in-flight slot (--concurrency 32)
    results = _results(out)
    assert len(results) == 3000 and {r["reason"] for r in results} == {"authentication"}
    assert {r["status"] for r in results} == {"failed", "cancelled"}
    assert "halted:" in err and "reason:    " in err and "authentication" in err
    assert "wrongkey" not in err


async def test_a_closed_port_ends_unreachable_after_the_outage_timeout(tmp_path: Path) -> None:
    source, out = _input(tmp_path / "in.jsonl", 3000), tmp_path / "out.jsonl"
    started = time.monotonic()
    code, _, err = await _run(
        "broadcast",
        str(source),
        "--output",
        str(out),
        "--outage-timeout",
        "1",
        env=_env(D360_API_KEY=API_KEY, D360_BASE_URL=f"http://127.0.0.1:{_closed_port()}"),
    )
    elapsed = time.monotonic() - started
    print(f"closed port: {elapsed:.2f} s")
    assert code == 1, err
    results = _results(out)
    assert len(results) == 3000
    assert {(r["status"], r["reason"]) for r in results} == {("failed", "unreachable")}
    assert "3000 failed (unreachable" in err
    assert elapsed < 15  # the outage timeout, not 3,000 failures' worth of retries


async def test_rate_0_against_a_server_enforcing_80_per_second_fails_nothing(
    tmp_path: Path,
) -> None:
    source, out = _input(tmp_path / "in.jsonl", 400), tmp_path / "out.jsonl"
    async with FakeDialog360(api_keys=[API_KEY], throughput=80) as fake:
        started = time.monotonic()
        code, _, err = await _run(
            "broadcast",
            str(source),
            "--output",
            str(out),
            "--rate",
            "0",
            env=_env(D360_API_KEY=API_KEY, D360_BASE_URL=fake.url),
        )
        elapsed = time.monotonic() - started
        stats = fake.stats()
    throttled = stats["throttled"]["by_reason"].get("130429", 0)
    print(f"rate 0: {stats['requests']['total']} requests, {throttled} throttled, {elapsed:.2f} s")
    assert code == 0, err
    assert {r["status"] for r in _results(out)} == {"sent"}
    assert stats["sends"]["total"] == 400 and stats["sends"]["duplicates"] == {}
    assert throttled > 0  # it was throttled, and slowed down instead of failing
    assert err.count("retry budget exhausted") <= 1  # the README promises one warning at most
