"""``dialog360 demo``: an offline broadcast into a broadcast store, the fake's status webhooks
received on 127.0.0.1, and the delivery report at the end (run in process and as ``main``)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

import pytest

from dialog360_async import BroadcastStore
from dialog360_async.cli import main
from dialog360_async.cli._demo import DEMO_CODES, run_demo
from dialog360_async.cli._input import UsageError
from dialog360_async.cli._parser import build_parser
from dialog360_async.testing import WebhookPlan

from .test_cli_report import table

FAILURE = re.compile(r"^  +(?P<count>\d+)  undelivered  (?P<code>\d+)  ", re.MULTILINE)
WEBHOOKS = re.compile(r"^webhooks: received (\d+) webhook\(s\): (\d+) status\(es\)", re.MULTILINE)


def failures(out: str) -> dict[int, int]:
    part = out.split("failures by code:\n")[1]
    return {int(m["code"]): int(m["count"]) for m in FAILURE.finditer(part)}


async def test_demo_ends_with_a_complete_delivery_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the demo's store goes
    code = await run_demo(count=600, channels=3, rate=0, seed=11)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert await asyncio.to_thread(os.listdir, tmp_path) == []  # the temporary store is gone
    summary, report = out.split("\ndelivery report: campaign ")
    assert "sent:      600" in summary and "unknown:   0" in summary
    rows = table(report)
    assert (rows["messages"], rows["sent"], rows["unconfirmed"], rows["pending"]) == (
        600,
        600,
        0,
        0,
    )
    # Every sent message got its final status: delivered (read or not) or failed.
    assert rows["delivered"] + rows["undelivered"] == 600
    assert 0 < rows["read"] < rows["delivered"]
    found = failures(report)
    assert sum(found.values()) == rows["undelivered"] > 0
    assert set(found) <= set(DEMO_CODES) and len(found) >= 2
    posts, statuses = map(int, WEBHOOKS.findall(out)[0])
    assert 0 < posts < statuses  # batched
    assert statuses >= 600 + rows["delivered"]  # a sent (or failed) each, then delivered...
    assert out.endswith("duplicates: 0\n")
    assert "status webhooks to http://127.0.0.1:" in err and "Traceback" not in err


async def test_a_missing_status_fails_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    never = WebhookPlan(undelivered_ratio=0.5, seed=3)  # half stay "sent" for good
    code = await run_demo(count=40, channels=2, rate=0, plan=never)
    out, err = capsys.readouterr()
    assert code == 1
    rows = table(out.split("\ndelivery report: campaign ")[1])
    assert rows["sent"] == 40 and 0 < rows["unconfirmed"] < 40
    assert rows["delivered"] == 40 - rows["unconfirmed"]
    assert f"dialog360: {rows['unconfirmed']} message(s) got no final status\n" in err


async def test_keep_db_keeps_the_store_for_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "demo.db"
    assert await run_demo(count=30, channels=2, rate=0, seed=4, keep_db=db) == 0
    shown = table(capsys.readouterr().out.split("\ndelivery report: campaign ")[1])
    async with BroadcastStore(db) as store:
        report = await store.report(horizon=0)
    assert (report.messages, report.sent, report.unconfirmed) == (30, 30, 0)
    assert (report.delivered, report.undelivered) == (shown["delivered"], shown["undelivered"])
    assert await asyncio.to_thread(main, ["report", str(db)]) == 0
    assert table(capsys.readouterr().out)["messages"] == 30
    with pytest.raises(UsageError, match="exists; name a new file"):
        await run_demo(count=30, keep_db=db)  # a second run would resume it: nothing is sent
    async with BroadcastStore(db) as store:
        assert (await store.report()).messages == 30


def test_the_demo_parser_takes_keep_db() -> None:
    args = build_parser().parse_args(["demo", "--keep-db", "out.db", "--count", "5"])
    assert (args.keep_db, args.count) == ("out.db", 5)
    assert build_parser().parse_args(["demo"]).keep_db is None
