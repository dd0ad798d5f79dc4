"""``dialog360 broadcast``'s files, with real processes against the fake on 127.0.0.1.

A mistyped journal with ``--resume``, two options naming one file (by name, symlink or hard
link) and a resumed run's results: refused before anything is sent or truncated, or kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY
from .test_cli import USERS, _env, _jsonl, _run


def _environment(fake: FakeDialog360) -> dict[str, str]:
    return _env(D360_API_KEY=API_KEY, D360_BASE_URL=fake.url)


def _results(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_resume_with_a_mistyped_journal_sends_nothing(
    fake: FakeDialog360, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    env = _environment(fake)
    journal, typo = tmp_path / "run.db", tmp_path / "rn.db"
    code, _, err = await _run("broadcast", str(path), "--journal", str(journal), env=env)
    assert code == 0, err
    sent = dict(fake.sends)
    out = tmp_path / "results.jsonl"
    argv = ["broadcast", str(path), "--journal", str(typo), "--resume", "--output", str(out)]
    code, stdout, err = await _run(*argv, env=env)
    assert (code, stdout) == (2, "")
    assert err == f"dialog360: --resume: no journal at {typo}: check the path\n"
    assert fake.sends == sent  # nothing sent again
    assert not typo.exists() and not out.exists()


def _contents(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _same_name(tmp: Path) -> tuple[list[str], list[Path]]:
    return ["--output", str(tmp / "run.db"), "--journal", str(tmp / "run.db")], []


def _journal_is_input(tmp: Path) -> tuple[list[str], list[Path]]:
    return ["--journal", str(tmp / "in.jsonl")], []


def _output_is_input_relative(tmp: Path) -> tuple[list[str], list[Path]]:
    return ["--output", "./sub/../in.jsonl"], []  # relative to the working folder, tmp


def _output_symlinks_to_input(tmp: Path) -> tuple[list[str], list[Path]]:
    (tmp / "link.jsonl").symlink_to(tmp / "in.jsonl")
    return ["--output", str(tmp / "link.jsonl")], []


def _output_hard_links_to_input(tmp: Path) -> tuple[list[str], list[Path]]:
    os.link(tmp / "in.jsonl", tmp / "hard.jsonl")
    return ["--output", str(tmp / "hard.jsonl")], []


def _new_files_through_a_symlinked_folder(tmp: Path) -> tuple[list[str], list[Path]]:
    (tmp / "alias").symlink_to(tmp / "sub", target_is_directory=True)
    new = [tmp / "sub" / "out", tmp / "alias" / "out"]
    return ["--output", str(new[0]), "--journal", str(new[1])], new


def _resume_output_into_its_journal(tmp: Path) -> tuple[list[str], list[Path]]:
    # The journal of an earlier run exists; --output names it through a symlink.
    (tmp / "results.link").symlink_to(tmp / "old.db")
    return ["--journal", str(tmp / "old.db"), "--resume", "--output", str(tmp / "results.link")], []


@pytest.mark.parametrize(
    "case",
    [
        _same_name,
        _journal_is_input,
        _output_is_input_relative,
        _output_symlinks_to_input,
        _output_hard_links_to_input,
        _new_files_through_a_symlinked_folder,
        _resume_output_into_its_journal,
    ],
)
async def test_one_file_named_twice_is_refused_untouched(
    fake: FakeDialog360,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: Callable[[Path], tuple[list[str], list[Path]]],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    env = _environment(fake)
    code, _, err = await _run("broadcast", str(path), "--journal", "old.db", env=env)
    assert code == 0, err
    fake.reset()
    options, new = case(tmp_path)
    before = _contents(tmp_path)
    code, out, err = await _run("broadcast", str(path), *options, env=env)
    assert (code, out) == (2, ""), err
    assert "are the same file" in err and len(err.splitlines()) == 1, err
    assert not fake.requests
    assert _contents(tmp_path) == before
    assert not any(p.exists() for p in new)


async def test_resume_appends_to_the_first_runs_results(
    fake: FakeDialog360, tmp_path: Path
) -> None:
    # 131009 (a bad parameter): a failure the campaign policy leaves alone, unlike 131026,
    # which suppresses the recipient for the rest of the broadcast (test_cli_reach.py).
    fake.fail_recipient(USERS[1], code=131009, message="Parameter value is not valid", times=1)
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    results = tmp_path / "results.jsonl"
    argv = ["broadcast", str(path), "--journal", str(tmp_path / "run.db"), "--output", str(results)]
    env = _environment(fake)
    code, _, err = await _run(*argv, env=env)
    assert code == 1, err
    first = _results(results)
    ids = {r["to"]: r["message_id"] for r in first if r["status"] == "sent"}
    assert sorted(ids) == [USERS[0], USERS[2]] and all(ids.values())
    code, _, err = await _run(*argv, "--resume", env=env)
    assert code == 0, err
    both = _results(results)
    assert both[: len(first)] == first  # the first run's message ids are still there
    second = {r["to"]: r["status"] for r in both[len(first) :]}
    assert second == {USERS[0]: "skipped", USERS[1]: "sent", USERS[2]: "skipped"}
    assert fake.sends == {u.lstrip("+"): 1 for u in USERS}
    assert "--resume appends" in (await _run("broadcast", "--help"))[1]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_killed_run_keeps_its_results_and_resume_adds_the_rest(
    fake: FakeDialog360, tmp_path: Path
) -> None:
    users = [f"+1555{i:07d}" for i in range(30)]
    path = _jsonl(tmp_path / "in.jsonl", users)
    results = tmp_path / "results.jsonl"
    argv = ["broadcast", str(path), "--journal", str(tmp_path / "run.db"), "--output", str(results)]
    env = _environment(fake)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dialog360_async", *argv, "--rate", "10"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        preexec_fn=_default_signals,
    )
    try:
        for _ in range(1500):  # up to 30 s for the first sends
            if sum(fake.sends.values()) >= 5:
                break
            await asyncio.sleep(0.02)
        process.kill()  # SIGKILL: no flush, no cleanup
    finally:
        await process.wait()
    # Line-buffered results survive the kill; a torn last line would be garbage, not lost ids.
    with results.open("a") as file:
        file.write('{"key": "torn')  # as if the kill had struck in the middle of a line
    first = results.read_text().splitlines()[:-1]
    recorded = {r["key"]: r["message_id"] for r in map(json.loads, first)}
    assert len(recorded) >= 3 and all(recorded.values())
    code, _, err = await _run(*argv, "--resume", "--rate", "0", env=env)
    assert code in (0, 1), err  # 1 only for a send in flight at the kill ("unknown")
    lines = results.read_text().splitlines()
    assert lines[: len(first)] == first
    assert lines[len(first)] == '{"key": "torn'  # kept apart from the resumed run's lines
    second = [json.loads(line) for line in lines[len(first) + 1 :]]
    assert len(second) == len(users)
    status = {r["key"]: r["status"] for r in second}
    # The store commits a settle a moment after the outcome: one killed in between resumes as
    # "unknown" (never resent), and its message id lives on in the first run's lines above.
    assert {status[key] for key in recorded} <= {"skipped", "unknown"}
    assert set(status.values()) <= {"sent", "skipped", "unknown"}
    assert not fake.duplicates()
