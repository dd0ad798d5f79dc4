"""``dialog360 suppressions list|add|remove`` and a broadcast's reach options against the fake:
a suppressed number is skipped with its reason, ``--outside-window skip`` sends only to users
whose window the journal's webhooks opened."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dialog360_async import BroadcastStore
from dialog360_async.testing import FakeDialog360
from dialog360_async.webhooks import InboundMessage, Notification

from .test_cli import USERS, Cli, _jsonl


@pytest.fixture(name="cli")
def _cli(fake: FakeDialog360, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(fake, capsys)


def _store(path: Path) -> Path:
    with open(path, "wb"):
        pass
    return path


async def test_list_add_remove(cli: Cli, tmp_path: Path) -> None:
    db = str(_store(tmp_path / "b.db"))
    assert await cli("suppressions", "list", db) == 0
    assert (cli.out, cli.err) == ("", "0 suppressed number(s)\n")
    assert await cli("suppressions", "add", db, "+1 555 0001", "--code", "131050") == 0
    assert cli.out.startswith("15550001  all") and "131050  for good  added by hand" in cli.out
    assert await cli("suppressions", "add", db, "15550002", "--marketing", "--hours", "24") == 0
    assert "marketing" in cli.out and "until 20" in cli.out
    assert await cli("suppressions", "list", db, "--json") == 0
    rows = [json.loads(line) for line in cli.out.splitlines()]
    assert [(r["recipient"], r["scope"], r["code"]) for r in rows] == [
        ("15550001", "all", 131050),
        ("15550002", "marketing", None),
    ]
    assert rows[0]["until"] is None and rows[1]["until"].endswith("Z")
    assert await cli("suppressions", "remove", db, "+15550001") == 0
    assert await cli("suppressions", "remove", db, "+15550001") == 1
    assert cli.err == "+15550001 was not on the list\n"
    assert await cli("suppressions", "add", db, "not-a-number") == 2
    assert await cli("suppressions", "add", db, "15550003", "--hours", "-1") == 2


async def test_a_missing_store_is_exit_2_and_nothing_is_created(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "typo.db")
    for argv in (("list", db), ("add", db, "15550001"), ("remove", db, "15550001")):
        assert await cli("suppressions", *argv) == 2
        assert cli.err == f"dialog360: no broadcast store at {db}: check the path\n"
    assert os.listdir(tmp_path) == []


async def test_broadcast_skips_the_suppressed_and_says_why(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    async with BroadcastStore(journal) as store:
        store.suppressions.add(USERS[0], code=131026, reason="undeliverable")
        store.suppressions.add(USERS[1], code=131050, scope="marketing", reason="stopped")
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    argv = ("broadcast", str(path), "--rate", "0", "--journal", str(journal), "--resume")
    assert await cli(*argv) == 0, cli.err
    results = {r["to"]: r for r in cli.results()}
    assert results[USERS[0]]["status"] == "skipped"
    assert results[USERS[0]]["reason"] == "suppressed" and results[USERS[0]]["code"] == 131026
    assert str(results[USERS[0]]["error"]).startswith("suppressed: 131026")
    assert results[USERS[1]]["status"] == "skipped"
    assert results[USERS[2]]["status"] == "sent" and results[USERS[2]]["reason"] is None
    assert "reason:    1 skipped (suppressed 131026: message undeliverable)" in cli.err
    assert fake.sends == {USERS[2].lstrip("+"): 1}
    # A utility campaign reaches the one suppressed for marketing only.
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({"to": USERS[1], "type": "text", "text": {"body": "hi"}}) + "\n")
    argv = ("broadcast", str(again), "--rate", "0", "--journal", str(journal), "--resume")
    assert await cli(*argv, "--utility") == 0, cli.err
    assert [r["status"] for r in cli.results()] == ["sent"]


async def test_outside_window_skip(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    async with BroadcastStore(journal) as store:
        inbound = InboundMessage(message_id="in-1", wa_id=USERS[2][1:], type="text", timestamp=None)
        await store.record_webhook(Notification(messages=(inbound,)))
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    argv = ["broadcast", str(path), "--rate", "0", "--journal", str(journal), "--resume"]
    assert await cli(*argv, "--outside-window", "skip") == 0, cli.err
    status = {r["to"]: (r["status"], r["reason"]) for r in cli.results()}
    assert status == {
        USERS[0]: ("skipped", "window-closed"),
        USERS[1]: ("skipped", "window-closed"),
        USERS[2]: ("sent", None),
    }
    assert fake.sends == {USERS[2].lstrip("+"): 1}
    assert await cli("broadcast", str(path), "--outside-window", "skip") == 2
    assert "--outside-window skip needs --journal" in cli.err
