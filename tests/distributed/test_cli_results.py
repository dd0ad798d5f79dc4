"""The command line without a Redis (one line, exit 1) and `broadcast --distributed --output`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ._harness import RedisServer, TimedFake, Workers, free_port, worker_env
from .test_cli_distributed import dialog360

KEYS = {"shop": "shop-SECRET-key-0123456789"}
LINE = '{{"to": "{to}", "type": "location", "location": {{"latitude": 1.5, "longitude": 2.5}}}}'


def messages(path: Path, count: int, keyed: int = 0) -> Path:
    """``count`` location messages; the first ``keyed`` carry their own key."""
    lines = []
    for n in range(count):
        line = json.loads(LINE.format(to=f"+1555{n:07d}"))
        if n < keyed:
            line["key"] = f"own-key-{n}"
        lines.append(json.dumps(line) + "\n")
    path.write_text("".join(lines))
    return path


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("D360_")}
    return {**env, **extra}


@pytest.mark.parametrize(
    "command",
    [
        ["broadcast", "{input}", "--distributed", "{url}", "--channel", "shop"],
        ["campaign", "status", "some-id", "--redis", "{url}"],
        ["campaign", "wait", "some-id", "--redis", "{url}"],
        ["campaign", "list", "--redis", "{url}"],
        ["campaign", "list"],  # the URL from D360_REDIS_URL
    ],
    ids=["broadcast", "status", "wait", "list", "list-from-env"],
)
async def test_no_redis_is_one_line_and_exit_1(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:pa55-SECRET-w0rd@127.0.0.1:{port}/0"
    source = messages(tmp_path / "m.jsonl", 3)
    args = [part.format(input=source, url=url) for part in command]
    started = time.monotonic()
    code, out, err = await dialog360(*args, env=environment(D360_REDIS_URL=url))
    took = time.monotonic() - started
    assert code == 1, err
    assert err.count("\n") == 1, err  # one line, no traceback
    shown = f"redis://:***@127.0.0.1:{port}/0"
    assert err.startswith(f"dialog360: cannot reach Redis at {shown}: "), err
    assert "SECRET" not in err + out
    assert "Traceback" not in err
    assert took < 10  # no riding out of an "outage" that is none


async def test_a_password_in_the_query_is_not_shown(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0?password=SECRET-pw&socket_timeout=1"
    code, _, err = await dialog360("campaign", "status", "x", "--redis", url, env=environment())
    assert code == 1
    assert err.startswith(
        f"dialog360: cannot reach Redis at redis://127.0.0.1:{port}/0?password=***&"
    ), err
    assert "SECRET" not in err


async def test_not_a_redis_url_is_bad_usage(tmp_path: Path) -> None:
    code, _, err = await dialog360(
        "campaign", "list", "--redis", "http://user:SECRET@example.com", env=environment()
    )
    assert code == 2, err
    assert err.count("\n") == 1 and "redis_url" in err and "SECRET" not in err


async def test_output_with_no_wait_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    source = messages(tmp_path / "m.jsonl", 3)
    out = tmp_path / "results.jsonl"
    code, _, err = await dialog360(
        "broadcast", str(source), "--distributed", f"redis://127.0.0.1:{free_port()}/0",
        "--channel", "shop", "--no-wait", "--output", str(out),
        env=environment(),
    )  # fmt: skip
    assert code == 2, err  # a usage error, raised before any Redis call (else: exit 1)
    assert "--output" in err and "--no-wait" in err and err.count("\n") == 1
    assert not out.exists()


async def test_output_gets_one_line_per_message_read_back_from_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    count, keyed = 120, 5
    source = messages(tmp_path / "m.jsonl", count, keyed)
    out = tmp_path / "results.jsonl"
    env = environment(D360_REDIS_URL=redis_server.url)
    async with TimedFake(api_keys=KEYS.values(), throughput=None) as fake:
        fake.fail_recipient("+15550000007", code=131026)
        fake.fail_recipient("+15550000100", code=131026)
        with Workers(worker_env(redis_server.url, fake.url, KEYS), tmp_path) as workers:
            workers.start(1)
            code, stdout, err = await dialog360(
                "broadcast", str(source), "--distributed", redis_server.url,
                "--channel", "shop", "--campaign", "out-1", "--batch-size", "25",
                "--output", str(out),
                env=env,
            )  # fmt: skip
    assert code == 1, err  # two failed
    assert stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == count
    assert [row["to"] for row in rows] == [f"+1555{n:07d}" for n in range(count)]
    for row in rows:
        assert set(row) == {"key", "to", "status", "message_id", "error", "code", "attempts"}
    assert [row["key"] for row in rows[:keyed]] == [f"own-key-{n}" for n in range(keyed)]
    assert all(row["key"].startswith(row["to"] + ":") for row in rows[keyed:])
    failed = {row["to"]: row for row in rows if row["status"] != "sent"}
    assert set(failed) == {"+15550000007", "+15550000100"}
    for row in failed.values():
        assert row["status"] == "failed" and row["code"] == 131026 and row["message_id"] is None
        assert "131026" in row["error"]
    sent = [row for row in rows if row["status"] == "sent"]
    assert len(sent) == count - 2
    assert all(row["message_id"] and row["error"] is None for row in sent)
    assert len({row["message_id"] for row in sent}) == len(sent)
    assert fake.duplicates() == {} and sum(fake.sends.values()) == count - 2
    assert "SECRET" not in out.read_text() + err


async def test_without_output_the_results_go_to_stdout(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    source = messages(tmp_path / "m.jsonl", 30)
    env = environment(D360_REDIS_URL=redis_server.url)
    async with TimedFake(api_keys=KEYS.values(), throughput=None) as fake:
        with Workers(worker_env(redis_server.url, fake.url, KEYS), tmp_path) as workers:
            workers.start(1)
            code, stdout, err = await dialog360(
                "broadcast", str(source), "--distributed", redis_server.url, "--channel", "shop",
                env=env,
            )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [row["status"] for row in rows] == ["sent"] * 30


async def test_a_halted_channel_exits_3_and_its_cancelled_messages_say_why(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    count = 60
    source = messages(tmp_path / "m.jsonl", count)
    out = tmp_path / "results.jsonl"
    env = environment(D360_REDIS_URL=redis_server.url)
    async with TimedFake(api_keys=KEYS.values(), throughput=None) as fake:
        fake.fail_recipient("+15550000025", code=131048, message="Spam rate limit hit")
        workers_env = worker_env(redis_server.url, fake.url, KEYS, worker_batches=1)
        with Workers(workers_env, tmp_path) as workers:
            workers.start(1)
            code, _, err = await dialog360(
                "broadcast", str(source), "--distributed", redis_server.url,
                "--channel", "shop", "--batch-size", "10", "--output", str(out),
                env=env,
            )  # fmt: skip
    assert code == 3, err
    assert "halted" in err and "131048" in err
    rows = {row["to"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == count
    spam = rows.pop("+15550000025")
    assert (spam["status"], spam["code"]) == ("failed", 131048)
    statuses = {row["status"] for row in rows.values()}
    assert statuses == {"sent", "cancelled"}
    # Batches one and two went before it; the later ones were not attempted, and say why.
    assert all(rows[f"+1555{n:07d}"]["status"] == "sent" for n in range(20))
    cancelled = [row for row in rows.values() if row["status"] == "cancelled"]
    assert len(cancelled) >= 30
    assert all("131048" in row["error"] for row in cancelled), cancelled[:3]
    assert sum(fake.sends.values()) == count - 1 - len(cancelled)
    assert fake.duplicates() == {}
