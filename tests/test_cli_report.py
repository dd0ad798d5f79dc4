"""``dialog360 report``, ``unknown`` and ``webhook serve``, run as ``python -m dialog360_async``
against broadcast stores that real bulk runs wrote (through the bundled fake on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

from dialog360_async import BroadcastStore, BulkSender, Dialog360Client, Outcome
from dialog360_async.testing import FakeDialog360, FakeResponse, WebhookPlan
from dialog360_async.webhooks import parse_webhook

from .test_bulk import messages, number
from .test_cli import _env, _run
from .test_report_html import Page
from .webhooks.payloads import CLOUD_SENT, cloud, status

KEY = "report-test-key-0123456789"
TOKEN = "hook-t0ken-s3cr3t-424242"
HOSTILE = "<script>alert('c')</script>"
ROW = re.compile(r"^  +(?P<label>[a-z][a-z ]*?)  +(?P<count>\d+)\b")


async def broadcast(
    path: Path, count: int, *, campaign: str, unknown: int = 0, fail: tuple[int, ...] = ()
) -> dict[str, Outcome]:
    """A real bulk run into the store at ``path``; outcomes by recipient digits."""
    async with (
        FakeDialog360(throughput=None) as fake,
        Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as client,
    ):
        for n in fail:
            fake.fail_recipient(number(n), code=131026)
        # Processed by the fake, then a 500: the sender cannot know, the message is in doubt.
        if unknown:
            fake.script("POST", "/messages", *[FakeResponse(status=500, process=True)] * unknown)
        sender = BulkSender(client, rate_limit=None, concurrency=1, journal=path)
        return {
            o.message.to.lstrip("+"): o
            async for o in sender.run(messages(count), campaign=campaign)
        }


def wamid(outcome: Outcome) -> str:
    assert outcome.result is not None, outcome
    return outcome.result.message_id


async def record(path: Path, *statuses: dict[str, object]) -> None:
    async with BroadcastStore(path) as store:
        await store.record_webhook(parse_webhook(cloud(statuses)))


def table(out: str) -> dict[str, int]:
    """The funnel rows of the printed report, by label (the first of a repeated label)."""
    found: dict[str, int] = {}
    for line in out.split("\n\nfailures by code:")[0].splitlines():
        match = ROW.match(line)
        if match:
            found.setdefault(match["label"], int(match["count"]))
    return found


async def test_missing_db_is_exit_2_and_nothing_is_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    runs = [
        ("report", str(db), "--html", str(tmp_path / "r.html")),
        ("unknown", str(db), "--output", str(tmp_path / "u.jsonl")),
        ("unknown", str(db), "--campaign", "spring"),
    ]
    for argv in runs:
        code, out, err = await _run(*argv)
        assert (code, out) == (2, "")
        assert err == f"dialog360: no broadcast store at {db}: check the path\n"
    assert os.listdir(tmp_path) == []
    code, out, err = await _run("--on-premise", "report", "+15550001")  # the old command
    assert (code, out) == (2, "")
    assert err.endswith(": check the path (to report a user: dialog360 report-user USER)\n")
    journal = tmp_path / "old.jsonl"
    journal.write_text('{"key": "k1", "state": "sent"}\n')
    code, out, err = await _run("report", str(journal))
    assert (code, out) == (1, "")
    assert err.startswith(f"dialog360: {journal} is not a broadcast store") and err.count("\n") == 1


async def test_report_of_a_real_broadcast_and_its_statuses(tmp_path: Path) -> None:
    db, page = tmp_path / "b.db", tmp_path / "report.html"
    sent = await broadcast(db, 6, campaign="spring", unknown=1, fail=(5,))
    assert [o.status for o in sent.values()] == ["unknown", *["sent"] * 4, "failed"]
    read, delivered, failed, silent = (sent[number(n).lstrip("+")] for n in (1, 2, 3, 4))
    title = "Message failed: <b>not</b> delivered"
    await record(
        db,
        status(wamid(read), "read", recipient_id=number(1).lstrip("+")),
        status(wamid(delivered), "delivered", recipient_id=number(2).lstrip("+")),
        status(wamid(failed), "failed", errors=[{"code": 131049, "title": title}]),
    )
    code, out, err = await _run("report", str(db), "--html", str(page))
    assert code == 0, err
    assert err == f"wrote {page}\n"
    counts = {
        "messages": 6,
        "sent": 4,
        "delivered": 2,
        "read": 1,
        "undelivered": 1,
        "unconfirmed": 0,
        "unknown settled": 0,
        "still unknown": 1,
        "rejected": 1,
        "cancelled": 0,
        "pending": 0,
        "orphan statuses": 0,
    }
    assert table(out) == counts
    assert out.startswith("delivery report: campaign spring (generated ")
    failures = out.split("failures by code:\n")[1].splitlines()
    assert sorted(line.split()[:3] for line in failures) == [
        ["1", "failed", "131026"],
        ["1", "undelivered", "131049"],
    ]
    shown = Page(page.read_text(encoding="utf-8"))
    for label, field in [("still unknown", "unknown"), ("sent", "sent"), ("read", "read")]:
        assert shown.metrics[field][-1] == str(counts[label])
    assert "131049" in "".join(shown.text)
    # A send without any status is unconfirmed once the horizon has passed.
    code, out, err = await _run("report", str(db), "--horizon", "0.001")
    assert code == 0, err
    assert table(out)["unconfirmed"] == 1 and table(out)["delivered"] == 2
    assert silent.status == "sent"


async def test_unknown_lists_the_messages_in_doubt_of_the_last_campaign(tmp_path: Path) -> None:
    db, listing = tmp_path / "b.db", tmp_path / "doubt.jsonl"
    first = await broadcast(db, 4, campaign="spring", unknown=2)
    doubtful = {k for k, o in first.items() if o.status == "unknown"}
    assert len(doubtful) == 2
    code, out, err = await _run("unknown", str(db), "--campaign", "spring")
    assert code == 0, err
    assert err == "2 message(s) in doubt in campaign spring\n"
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["recipient"].lstrip("+") for r in records} == doubtful
    assert {r["campaign"] for r in records} == {"spring"}
    assert set(records[0]) == {
        *("campaign", "key", "recipient", "channel", "state", "outcome", "attempts", "wamid"),
        *("callback", "error_code", "error_title", "claimed_at", "settled_at"),
    }
    code, out, err = await _run("unknown", str(db), "--campaign", "spring", "--output", "-")
    assert (code, [json.loads(line) for line in out.splitlines()]) == (0, records)
    code, out, err = await _run("unknown", str(db), "--output", str(listing))
    assert (code, out, err) == (0, "", "2 message(s) in doubt in campaign spring\n")
    assert [json.loads(line) for line in listing.read_text().splitlines()] == records

    await broadcast(db, 2, campaign="autumn")
    code, out, err = await _run("unknown", str(db))  # the last campaign by default
    assert (code, out, err) == (0, "", "0 message(s) in doubt in campaign autumn\n")
    code, out, err = await _run("report", str(db), "--campaign", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("dialog360: no campaign 'nope' in ") and "'spring'" in err
    code, out, err = await _run("unknown", str(db), "--output", str(db))
    assert (code, out) == (2, "")
    assert err == "dialog360: --output and DB are the same file: name a different file\n"


async def test_hostile_campaign_and_error_title_stay_text(tmp_path: Path) -> None:
    db, page = tmp_path / "b.db", tmp_path / "report.html"
    sent = await broadcast(db, 1, campaign=HOSTILE)
    title = "<img src=x onerror=alert(1)>"
    (outcome,) = sent.values()
    await record(db, status(wamid(outcome), "failed", errors=[{"code": 139999, "title": title}]))
    code, out, err = await _run("report", str(db), "--html", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html
    shown = Page(html)
    assert shown.tags["script"] == shown.tags["img"] == 0
    assert HOSTILE in "".join(shown.text) and title in "".join(shown.text)
    assert f"campaign {HOSTILE}" in out and table(out)["undelivered"] == 1


async def serve(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "dialog360_async", "webhook", "serve", "--port", "0", *argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=_env(),
    )
    assert process.stdout is not None
    url = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\w+", url), url
    return process, url


async def stop(process: asyncio.subprocess.Process, signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_webhook_serve_writes_the_statuses_of_a_broadcast(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    receiver, url = await serve("--db", str(db), "--auth-header", f"X-Hook-Token: {TOKEN}")
    try:
        plan = WebhookPlan(seed=7)
        async with (
            FakeDialog360(
                throughput=None,
                webhook_url=url,
                webhook_headers={"X-Hook-Token": TOKEN},
                webhooks=plan,
            ) as fake,
            Dialog360Client(KEY, base_url=fake.url, rate_limit=None) as client,
        ):
            fates = ("read", "read", "delivered", "sent", "failed")
            for n, fate in enumerate(fates):
                fake.fate(number(n), fate, code=131049 if fate == "failed" else None)
            sender = BulkSender(client, rate_limit=None, journal=db)
            summary = await sender.send_all(messages(len(fates)), campaign="live")
            await asyncio.wait_for(fake.webhooks_idle(), timeout=30)
        assert summary.sent == len(fates)
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=CLOUD_SENT) as unsigned:
                assert unsigned.status == 401
            headers = {"X-Hook-Token": TOKEN}
            async with http.post(url, data=CLOUD_SENT, headers=headers) as orphan:
                assert orphan.status == 200
    finally:
        code, out, err = await stop(receiver, signal.SIGTERM)
    assert code == 0, err
    assert out == ""  # the URL line was read already
    statuses = 3 + 3 + 2 + 1 + 2  # read: sent, delivered, read; failed: sent, failed
    assert err.splitlines()[-1].startswith(
        f"received {fake.stats()['webhooks']['delivered'] + 1} webhook(s): "
        f"{statuses + 1} status(es), 0 message(s), 0 duplicate(s), 0 invalid, 1 rejected"
    )
    assert TOKEN not in out + err
    code, out, err = await _run("report", str(db))
    assert code == 0, err
    assert {k: table(out)[k] for k in ("sent", "delivered", "read", "undelivered")} == {
        "sent": 5,
        "delivered": 3,
        "read": 2,
        "undelivered": 1,
    }
    # CLOUD_SENT's wamid is no send of the store and its callback tag names no campaign of it.
    assert table(out)["orphan statuses"] == 0
    assert re.search(r"^  1  undelivered  131049 ", out, re.MULTILINE), out


async def test_webhook_serve_stops_cleanly_on_ctrl_c_and_creates_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "new.db"
    receiver, url = await serve("--db", str(db), "--path", "/hooks")
    try:
        assert url.endswith("/hooks") and db.exists()
    finally:
        code, out, err = await stop(receiver, signal.SIGINT)
    assert (code, out) == (0, "")
    assert err.splitlines()[-1].startswith("received 0 webhook(s): 0 status(es)")
    code, out, err = await _run("unknown", str(db))
    assert (code, out) == (2, "")
    assert err == f"dialog360: {db} holds no broadcast yet\n"


async def test_bad_auth_header_or_secret_is_exit_2_without_the_value(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    secret = "sup3r-s3cret-v4lue"
    for given in (secret, f"X-Token:{secret}\x07", f"bad name:{secret}", f":{secret}", "X-Token:"):
        code, out, err = await _run(
            "webhook", "serve", "--db", str(db), "--port", "0", "--auth-header", given
        )
        assert (code, out) == (2, ""), given
        assert (
            err.startswith("dialog360: --auth-header #1: must be NAME:VALUE")
            and err.count("\n") == 1
        )
        assert secret not in err
    argv = ["--auth-header", f"X-Token:{secret}", "--auth-header", f"x-token:{secret}"]
    code, out, err = await _run("webhook", "serve", "--db", str(db), "--port", "0", *argv)
    assert (code, err) == (2, "dialog360: --auth-header #2: header x-token given twice\n")
    argv = ["--signature-secret-env", "D360_NOT_SET"]
    code, out, err = await _run("webhook", "serve", "--db", str(db), "--port", "0", *argv)
    assert (code, err) == (
        2,
        "dialog360: --signature-secret-env: $D360_NOT_SET is not set or empty\n",
    )
    code, out, err = await _run("webhook", "serve", "--db", str(db), "--port", "x", secret)
    assert code == 2 and secret not in err and "'x'" not in err
    assert not db.exists()
