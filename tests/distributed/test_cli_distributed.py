"""The command line drives a campaign: `broadcast --distributed` and `campaign status`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from ._harness import RedisServer, TimedFake, Workers, worker_env

KEYS = {"shop": "shop-SECRET-key-0123456789"}


async def dialog360(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialog360_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_broadcast_distributed_and_campaign_status(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    source = tmp_path / "messages.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "to": f"+1555{n:07d}",
                    "type": "location",
                    "location": {"latitude": 1.0, "longitude": 2.0},
                }
            )
            + "\n"
            for n in range(300)
        )
    )
    env = {**os.environ, "D360_REDIS_URL": redis_server.url}
    env.pop("D360_API_KEY", None)  # the producer needs no key: workers hold them
    async with TimedFake(api_keys=KEYS.values(), throughput=None) as fake:
        with Workers(worker_env(redis_server.url, fake.url, KEYS), tmp_path) as workers:
            workers.start(1)
            code, _, err = await dialog360(
                "broadcast",
                str(source),
                "--distributed",
                redis_server.url,
                "--channel",
                "shop",
                "--campaign",
                "cli-1",
                "--batch-size",
                "50",
                env=env,
            )
    assert code == 0, err
    assert "campaign cli-1" in err
    code, out, _ = await dialog360("campaign", "status", "cli-1", env=env)
    assert code == 0
    status = json.loads(out)
    assert (status["state"], status["sent"], status["messages"]) == ("finished", 300, 300)
    code, out, _ = await dialog360("campaign", "list", env=env)
    assert "cli-1" in out.split()
    code, _, err = await dialog360("campaign", "status", "nope", env=env)
    assert code == 1
    assert fake.duplicates() == {} and sum(fake.sends.values()) == 300
    assert KEYS["shop"] not in err


async def test_distributed_broadcast_needs_a_channel(tmp_path: Path) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text(
        '{"to": "+15550000001", "type": "location", "location": {"latitude": 1, "longitude": 2}}\n'
    )
    code, _, err = await dialog360(
        "broadcast", str(source), "--distributed", "redis://127.0.0.1:1/0", env=dict(os.environ)
    )
    assert code == 2
    assert "--channel" in err
