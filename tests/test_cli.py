"""The ``dialog360`` command line, end to end against the bundled fake on 127.0.0.1.

``main`` runs its own event loop, so in-process tests call it in a thread while the fake
serves from the test's loop; a few tests run the real ``python -m dialog360_async``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dialog360_async import BulkSender, BulkStats
from dialog360_async.cli import main
from dialog360_async.cli._demo import Progress
from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY

REPO = Path(__file__).resolve().parents[1]
USERS = ["+15550001", "+15550002", "+15550003"]
ADA = {"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"}, "phones": [{"phone": "+1"}]}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("D360_API_KEY", raising=False)
    monkeypatch.delenv("D360_BASE_URL", raising=False)


class Cli:
    """Runs ``main`` in a thread and checks that the API key never reaches the output."""

    def __init__(self, fake: FakeDialog360, capsys: pytest.CaptureFixture[str]) -> None:
        self.fake = fake
        self.capsys = capsys
        self.out = ""
        self.err = ""

    async def __call__(self, *argv: str, key: str | None = API_KEY) -> int:
        prefix = ["--base-url", self.fake.url] + (["--api-key", key] if key else [])
        code = await asyncio.wait_for(asyncio.to_thread(main, [*prefix, *argv]), timeout=30)
        self.out, self.err = self.capsys.readouterr()
        assert API_KEY not in self.out + self.err
        if key:
            assert key not in self.out + self.err
        return code

    def results(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


@pytest.fixture
def cli(fake: FakeDialog360, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(fake, capsys)


def _jsonl(path: Path, users: Sequence[str]) -> Path:
    lines = []
    for i, user in enumerate(users):
        if i % 2:
            lines.append({"to": user, "type": "contacts", "contacts": [ADA], "key": f"k{i}"})
        else:
            lines.append({"to": user, "location": {"latitude": 1.5, "longitude": i}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# -- one-shot commands ----------------------------------------------------------------------


async def test_send_location(cli: Cli, fake: FakeDialog360) -> None:
    code = await cli("send-location", "--to", "+1 555 0001", "--lat", "52.5", "--lon", "13.4")
    assert code == 0, cli.err
    assert cli.out.startswith("wamid.")
    assert fake.sends == {"15550001": 1}
    body = fake.requests[-1].json
    assert body["location"] == {"latitude": 52.5, "longitude": 13.4}


async def test_send_location_on_premise_with_name(cli: Cli, fake: FakeDialog360) -> None:
    argv = ["send-location", "--to", USERS[0], "--lat", "1", "--lon", "2", "--name", "Gate"]
    assert await cli("--on-premise", *argv) == 0, cli.err
    assert fake.requests[-1].path == "/v1/messages"
    assert fake.requests[-1].json["location"]["name"] == "Gate"


async def test_bad_coordinates_are_a_usage_error(cli: Cli, fake: FakeDialog360) -> None:
    assert await cli("send-location", "--to", USERS[0], "--lat", "91", "--lon", "0") == 2
    assert cli.err.startswith("dialog360: Location.latitude")
    assert len(cli.err.splitlines()) == 1
    assert not fake.requests


@pytest.mark.parametrize("shape", ["one", "list"])
async def test_send_contacts(cli: Cli, fake: FakeDialog360, tmp_path: Path, shape: str) -> None:
    path = tmp_path / "contact.json"
    path.write_text(json.dumps(ADA if shape == "one" else [ADA, ADA]))
    assert await cli("send-contacts", "--to", USERS[0], "--file", str(path)) == 0, cli.err
    assert cli.out.startswith("wamid.")
    assert len(fake.requests[-1].json["contacts"]) == (1 if shape == "one" else 2)


async def test_send_contacts_bad_file(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    path = tmp_path / "contact.json"
    path.write_text(json.dumps([ADA, {"name": {"formatted_name": "Bob"}}]))
    assert await cli("send-contacts", "--to", USERS[0], "--file", str(path)) == 2
    assert cli.err == f"dialog360: {path}: Name: needs at least one of first_name, " + (
        "last_name, middle_name, suffix, prefix\n"
    )
    path.write_text("{not json")
    assert await cli("send-contacts", "--to", USERS[0], "--file", str(path)) == 2
    assert "not valid JSON" in cli.err
    assert await cli("send-contacts", "--to", USERS[0], "--file", str(tmp_path / "nope")) == 2
    assert cli.err == f"dialog360: {tmp_path / 'nope'}: no such file\n"
    assert not fake.requests


async def test_block_unblock_and_list(cli: Cli, fake: FakeDialog360) -> None:
    fake.engage(USERS[0], USERS[1])
    assert await cli("block", USERS[0], USERS[1]) == 0, cli.err
    # block, unblock and blocked print one form: the wa_id, as the API lists it
    assert cli.out.splitlines() == ["added 15550001", "added 15550002"]
    assert await cli("blocked") == 0
    assert sorted(cli.out.split()) == ["15550001", "15550002"]
    assert await cli("unblock", USERS[0]) == 0
    assert cli.out == "removed 15550001\n"
    assert fake.blocklist(API_KEY) == ["15550002"]


async def test_block_partial_failure_exits_1(cli: Cli, fake: FakeDialog360) -> None:
    fake.engage(USERS[0])
    assert await cli("block", USERS[0], USERS[2]) == 1
    added, failed = cli.out.splitlines()
    assert added == "added 15550001"
    assert failed.startswith("failed 15550003: ") and "131047" in failed


async def test_on_premise_block_with_reason_and_report(cli: Cli, fake: FakeDialog360) -> None:
    fake.engage(*USERS)
    assert await cli("--on-premise", "block", "+1 555-0001", "--reason", "spam") == 0, cli.err
    assert cli.out == "added 15550001\n"  # the form `blocked` prints, though no wa_id came back
    assert fake.requests[-1].json == {"reason": "spam"}
    assert await cli("--on-premise", "blocked") == 0
    assert cli.out == "15550001\n"
    argv = ["report-user", USERS[1], "--reason", "abuse", "--block", "--message-id", "gBGH1"]
    assert await cli("--on-premise", *argv) == 0, cli.err
    assert cli.out == f"reported {USERS[1]} and blocked\n"
    assert fake.requests[-1].json == {"block": True, "reason": "abuse", "message_id": "gBGH1"}
    assert "15550002" in fake.blocklist(API_KEY)


async def test_cloud_only_refusals_exit_2(cli: Cli, fake: FakeDialog360) -> None:
    assert await cli("report-user", USERS[0]) == 2
    assert cli.err == (
        "dialog360: report needs --on-premise: the Cloud API has no report endpoint\n"
    )
    assert await cli("block", USERS[0], "--reason", "spam") == 2
    assert "--on-premise" in cli.err
    assert not fake.requests


async def test_missing_api_key_exits_2(cli: Cli, fake: FakeDialog360) -> None:
    assert await cli("blocked", key=None) == 2
    assert cli.err == "dialog360: no API key: set D360_API_KEY (or pass --api-key)\n"
    assert not fake.requests


async def test_api_key_from_environment_and_options_after_the_command(
    cli: Cli, fake: FakeDialog360, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D360_API_KEY", API_KEY)
    fake.engage(USERS[0])
    assert await cli("block", USERS[0], key=None) == 0, cli.err
    code = await asyncio.to_thread(main, ["blocked", "--base-url", fake.url, "--timeout", "5"])
    assert code == 0
    assert cli.capsys.readouterr().out == "15550001\n"


async def test_api_error_is_one_line_and_hides_the_key(cli: Cli, fake: FakeDialog360) -> None:
    wrong = "wr0ng-s3cr3t-key-42"
    assert await cli("send-location", "--to", USERS[0], "--lat", "1", "--lon", "1", key=wrong) == 1
    assert cli.err.startswith("dialog360: ") and "401" in cli.err
    assert len(cli.err.splitlines()) == 1


async def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "broadcast" in capsys.readouterr().out
    assert main(["broadcast", "--help"]) == 0
    assert "validated first" in capsys.readouterr().out
    assert main(["send-location", "--to", "1"]) == 2
    assert "required" in capsys.readouterr().err
    # A misspelt option may be followed by the key: its value is never echoed.
    assert main(["blocked", "--api-kye", "s3cr3t-value"]) == 2
    err = capsys.readouterr().err
    assert "--api-kye" in err and "s3cr3t-value" not in err


# -- broadcast ------------------------------------------------------------------------------


async def test_broadcast_jsonl_to_stdout(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    assert await cli("broadcast", str(path), "--rate", "0") == 0, cli.err
    results = sorted(cli.results(), key=lambda r: str(r["to"]))
    assert [r["to"] for r in results] == USERS
    assert {r["status"] for r in results} == {"sent"}
    assert all(str(r["message_id"]).startswith("wamid.") for r in results)
    assert results[1]["key"] == "k1"
    assert str(results[0]["key"]).startswith("+15550001:")
    assert set(results[0]) == {
        "key",
        "to",
        "status",
        "message_id",
        "error",
        "code",
        "reason",
        "attempts",
    }
    assert results[0]["reason"] is None  # sent: no reason
    assert results[0]["attempts"] == 1 and results[0]["error"] is None
    assert "sent:      3" in cli.err
    assert fake.sends == {u.lstrip("+"): 1 for u in USERS}


async def test_broadcast_csv_locations(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "to,latitude,longitude,name,address\n"
        "+15550001,52.5,13.4,Gate,Pariser Platz\n"
        "\n"
        "+15550002,-33.9,18.4,,\n"
    )
    out = tmp_path / "results.jsonl"
    assert await cli("broadcast", str(path), "--output", str(out)) == 0, cli.err
    assert cli.out == ""
    assert len(out.read_text().splitlines()) == 2
    bodies = {r.json["to"]: r.json["location"] for r in fake.requests}
    assert bodies["+15550001"] == {
        "latitude": 52.5,
        "longitude": 13.4,
        "name": "Gate",
        "address": "Pariser Platz",
    }
    assert bodies["+15550002"] == {"latitude": -33.9, "longitude": 18.4}


async def test_broadcast_csv_contacts(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "to,formatted_name,first_name,last_name,phone,key\n"
        "+15550001,Ada Lovelace,Ada,Lovelace,+44 20 7946 0000,a\n"
        "+15550002,Grace,Grace,,,b\n"
    )
    assert await cli("broadcast", str(path)) == 0, cli.err
    assert {r["key"] for r in cli.results()} == {"a", "b"}
    cards = {r.json["to"]: r.json["contacts"] for r in fake.requests}
    name = {"formatted_name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"}
    assert cards["+15550001"] == [{"name": name, "phones": [{"phone": "+44 20 7946 0000"}]}]
    assert cards["+15550002"] == [{"name": {"formatted_name": "Grace", "first_name": "Grace"}}]


async def test_broadcast_failure_exits_1(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    fake.fail_recipient(USERS[1])
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    assert await cli("broadcast", str(path)) == 1
    by_to = {r["to"]: r for r in cli.results()}
    assert by_to[USERS[1]]["status"] == "failed"
    assert by_to[USERS[1]]["code"] == 131026
    assert "Message undeliverable" in str(by_to[USERS[1]]["error"])
    assert by_to[USERS[0]]["status"] == "sent"
    assert "failed:    1" in cli.err


async def test_broadcast_journal_and_resume(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    journal = str(tmp_path / "run.jsonl")
    path = _jsonl(tmp_path / "in.jsonl", USERS[:2])
    assert await cli("broadcast", str(path), "--journal", journal) == 0, cli.err
    _jsonl(path, USERS)  # the list grew by one recipient since
    assert await cli("broadcast", str(path), "--journal", journal) == 2
    assert "--resume" in cli.err
    assert await cli("broadcast", str(path), "--journal", journal, "--resume") == 0, cli.err
    status = {r["to"]: r["status"] for r in cli.results()}
    assert status == {USERS[0]: "skipped", USERS[1]: "skipped", USERS[2]: "sent"}
    assert fake.sends == {u.lstrip("+"): 1 for u in USERS}
    assert not fake.duplicates()


async def test_resume_needs_a_journal(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "in.jsonl", USERS[:1])
    assert await cli("broadcast", str(path), "--resume") == 2
    assert cli.err == "dialog360: --resume needs --journal FILE\n"
    journal = tmp_path / "new.db"
    assert await cli("broadcast", str(path), "--journal", str(journal), "--resume") == 2
    assert cli.err == f"dialog360: --resume: no journal at {journal}: check the path\n"
    assert not fake.requests
    assert not journal.exists()


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        (
            "in.csv",
            "to,latitude,longitude\n+15550001,1,2\n+15550002,1,2\n+15550003,north,2\n",
            "in.csv:4: latitude: not a number: 'north'",
        ),
        ("in.csv", "to,lat,lon\n+15550001,1,2\n", "in.csv:1: unknown column 'lat'"),
        (
            "in.jsonl",
            '{"to": "+15550001", "location": {"latitude": 1, "longitude": 2}}\n'
            '{"to": "+15550002", "location": {"latitude": 1, "longitude": 2}\n',
            "in.jsonl:2: not valid JSON",
        ),
        (
            "in.jsonl",
            '{"to": "+15550001", "location": {"latitude": 1, "longitude": 2}}\n\n'
            '{"to": "nobody", "location": {"latitude": 1, "longitude": 2}}\n',
            "in.jsonl:3: to: must be a phone number",
        ),
        ("in.txt", "", "in.txt: unknown format"),
    ],
)
async def test_bad_input_line_sends_nothing(
    cli: Cli, fake: FakeDialog360, tmp_path: Path, name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "results.jsonl"
    assert await cli("broadcast", str(path), "--output", str(out)) == 2
    assert cli.err.startswith(f"dialog360: {tmp_path / error}")
    assert len(cli.err.splitlines()) == 1
    assert not fake.requests
    assert not out.exists()


async def test_broadcast_missing_input_file(cli: Cli, tmp_path: Path) -> None:
    assert await cli("broadcast", str(tmp_path / "gone.jsonl")) == 2
    assert cli.err == f"dialog360: {tmp_path / 'gone.jsonl'}: no such file\n"


# -- real processes -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("D360_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


async def _run(
    *argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialog360_async",
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or _env(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_demo_subprocess() -> None:
    code, out, err = await _run("demo", "--count", "500", "--rate", "0")
    assert code == 0, err
    assert "sent:      500" in out
    assert "failed:    0" in out and "unknown:   0" in out
    assert "duplicates: 0" in out
    assert "Traceback" not in err


async def test_subprocess_broadcast_from_stdin(fake: FakeDialog360, tmp_path: Path) -> None:
    text = _jsonl(tmp_path / "in.jsonl", USERS).read_bytes()
    env = _env(D360_API_KEY=API_KEY, D360_BASE_URL=fake.url)
    code, out, err = await _run("broadcast", "-", stdin=text, env=env)
    assert code == 0, err
    assert sorted(json.loads(line)["to"] for line in out.splitlines()) == USERS
    assert "sent:      3" in err
    assert API_KEY not in out + err
    bad = text + b'{"to": "+15550009", "type": "image"}\n'
    code, out, err = await _run("broadcast", "-", stdin=bad, env=env)
    assert (code, out) == (2, "")
    assert err == (
        'dialog360: <stdin>:4: $.type: must be "location", "contacts", "text" or "template", '
        "got 'image'\n"
    )
    assert fake.sends == {u.lstrip("+"): 1 for u in USERS}


async def test_subprocess_against_fake_server_subcommand() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "dialog360_async", "fake-server", "--port", "0", "--throughput", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert server.stdout is not None
        url = (await asyncio.wait_for(server.stdout.readline(), timeout=20)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        argv = ["--base-url", url, "send-location", "--to", USERS[0], "--lat", "1", "--lon", "2"]
        code, out, err = await _run(*argv, env=_env(D360_API_KEY=API_KEY))
        assert code == 0, err
        assert out.startswith("wamid.")
        code, out, err = await _run("--base-url", url, "report-user", USERS[0])
        assert code == 2
        assert "--on-premise" in err
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.communicate(), timeout=20)
    assert server.returncode == 0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_ctrl_c_then_resume(fake: FakeDialog360, tmp_path: Path) -> None:
    users = [f"+1555{i:07d}" for i in range(40)]
    path = _jsonl(tmp_path / "in.jsonl", users)
    journal, results = tmp_path / "run.jsonl", tmp_path / "results.jsonl"
    argv = ["broadcast", str(path), "--journal", str(journal), "--output", str(results)]
    env = _env(D360_API_KEY=API_KEY, D360_BASE_URL=fake.url)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dialog360_async", *argv, "--rate", "10"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        # A job started in the background (as CI may run us) inherits SIGINT ignored, and
        # Python then keeps ignoring it; a terminal user's Ctrl-C is what is tested here.
        preexec_fn=_default_sigint,
    )
    try:
        for _ in range(1500):  # up to 30 s for the first sends
            if sum(fake.sends.values()) >= 5:
                break
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err
    text = err.decode()
    assert "interrupted" in text and "--resume" in text and "Traceback" not in text
    first = [json.loads(line) for line in results.read_text().splitlines()]
    assert 5 <= sum(r["status"] == "sent" for r in first) < len(users)
    code, _, err2 = await _run(*argv, "--resume", "--rate", "0", env=env)
    assert code in (0, 1), err2  # 1 only if a send was in flight at Ctrl-C ("unknown")
    both = [json.loads(line) for line in results.read_text().splitlines()]
    assert both[: len(first)] == first  # --resume appends: the first run's ids are kept
    second = both[len(first) :]
    assert len(second) == len(users)
    assert {r["status"] for r in second} <= {"sent", "skipped", "unknown"}
    assert not fake.duplicates()
    assert sum(fake.sends.values()) + sum(r["status"] == "unknown" for r in second) >= len(users)


# -- demo and progress ----------------------------------------------------------------------


async def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--count", "40", "--channels", "3", "--rate", "0", "--seed", "7"]
    assert await asyncio.to_thread(main, argv) == 0
    out, err = capsys.readouterr()
    assert "sent:      40" in out and out.endswith("duplicates: 0\n")
    assert "3 channels" in err
    assert main(["demo", "--channels", "0"]) == 2
    assert "--channels >= 1" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
async def test_progress_display(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> None:
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    sender = BulkSender(rate_limit=None)
    async with Progress(sender, 10, interval=0.2):
        sender.stats = BulkStats(sent=4, failed=1, unknown=2)
        await asyncio.sleep(0.5)
    shown = stream.getvalue()
    assert "sent=4 failed=1 unknown=2 rate=0.0 msg/s" in shown
    if terminal:
        assert "7/10" in shown  # the tqdm bar counts every outcome
    else:
        assert shown.splitlines()[0] == "sent=4 failed=1 unknown=2 rate=0.0 msg/s"
