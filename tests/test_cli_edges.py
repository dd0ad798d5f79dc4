"""The command line's edges, with real ``python -m dialog360_async`` processes: repeated keys,
values that must not be echoed, empty or missing inputs, one form for users, exit statuses."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialog360_async.cli import main
from dialog360_async.cli._parser import build_parser, without_values
from dialog360_async.testing import FakeDialog360

from .conftest import API_KEY
from .test_cli import USERS, _env, _jsonl, _run

SECRET = "s3cr3t-0123456789abcdef-KEY"


def _environment(fake: FakeDialog360) -> dict[str, str]:
    return _env(D360_API_KEY=API_KEY, D360_BASE_URL=fake.url)


def _location(to: str, key: str | None = None) -> str:
    line: dict[str, object] = {"to": to, "location": {"latitude": 1.5, "longitude": 2.5}}
    if key is not None:
        line["key"] = key
    return json.dumps(line) + "\n"


# -- repeated keys --------------------------------------------------------------------------


async def test_every_duplicate_line_is_reported_and_nothing_sent(
    fake: FakeDialog360, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        _location(USERS[0])  # 1
        + _location(USERS[1], key="a")  # 2
        + _location(USERS[0])  # 3: the same line as 1 (the default key)
        + _location(USERS[2], key="a")  # 4: the same explicit key as 2
        + _location(USERS[2])  # 5
        + _location(USERS[0])  # 6: line 1 once more
    )
    out = tmp_path / "results.jsonl"
    code, stdout, err = await _run(
        "broadcast", str(path), "--output", str(out), env=_environment(fake)
    )
    assert (code, stdout) == (2, "")
    assert err.splitlines() == [
        f"dialog360: {path}:3: duplicate of line 1",
        f"dialog360: {path}:4: duplicate of line 2",
        f"dialog360: {path}:6: duplicate of line 1",
        f"dialog360: {path}: 3 lines repeat an earlier key: give each its own key",
    ]
    assert not fake.requests
    assert not out.exists()


# -- no value in a usage error --------------------------------------------------------------

_KINDS = {
    "command choice": [SECRET],
    "value after a misspelt option": ["--bogus", SECRET],
    "global option type": ["--timeout", SECRET, "blocked"],
    "command option type": ["broadcast", "in.jsonl", "--rate", SECRET],
    "integer option": ["broadcast", "in.jsonl", "--concurrency", SECRET],
    "coordinate": ["send-location", "--to", "15550001", "--lat", SECRET, "--lon", "1"],
    "option choice": ["broadcast", "in.jsonl", "--format", SECRET],
    "nested command choice": ["campaign", SECRET],
    "value of a flag": [f"--on-premise={SECRET}", "blocked"],
    "abbreviated option": [f"--ti={SECRET}", "blocked"],
    "ambiguous abbreviation": ["broadcast", "in.jsonl", f"--r={SECRET}"],
    "unknown option=value": ["blocked", f"--api-kye={SECRET}"],
    "extra value": ["blocked", SECRET],
    "extra value with an option inside": ["blocked", f"x -{SECRET}"],
}


@pytest.mark.parametrize("argv", _KINDS.values(), ids=_KINDS.keys())
async def test_usage_errors_never_echo_a_value(argv: list[str]) -> None:
    code, out, err = await _run(*argv, env=_env())
    assert code == 2
    assert "error: " in err and "Traceback" not in err
    assert SECRET not in out + err
    assert SECRET[:12] not in out + err


def _valued_arguments(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, list[str]]]:
    """Every argument of every command that converts or checks its value, with an argv."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield " ".join([*path, action.metavar or action.dest]), [*path, SECRET]
            for name, sub in action.choices.items():
                yield from _valued_arguments(sub, (*path, name))
        elif action.type is not None or action.choices is not None:
            if action.option_strings:
                yield (
                    " ".join([*path, action.option_strings[0]]),
                    [
                        *path,
                        action.option_strings[0],
                        SECRET,
                    ],
                )
            else:
                yield " ".join([*path, action.dest]), [*path, SECRET]


def test_no_argument_of_any_command_echoes_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    checked = dict(_valued_arguments(build_parser()))
    for name in [
        "COMMAND",
        "--timeout",
        "broadcast --rate",
        "broadcast --concurrency",
        "broadcast --format",
        "broadcast --batch-size",
        "send-location --lat",
        "send-location --lon",
        "demo --count",
        "demo --seed",
        "campaign ACTION",
    ]:
        assert name in checked
    for name, argv in checked.items():
        assert main(argv) == 2, name
        out, err = capsys.readouterr()
        assert "error: " in err, name
        assert SECRET not in out + err, name


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            f"argument COMMAND: invalid choice: '{SECRET}' (choose from 'a', 'b')",
            "argument COMMAND: invalid choice (choose from 'a', 'b')",
        ),
        (
            f"argument --rate: invalid float value: '{SECRET}'",
            "argument --rate: invalid float value",
        ),
        (
            f"argument --resume: ignored explicit argument '{SECRET}'",
            "argument --resume: takes no value",
        ),
        (f"argument --gateway: no good: {SECRET}", "argument --gateway: invalid value"),
        ("argument --api-key: expected one argument", "argument --api-key: expected one argument"),
        (
            f"ambiguous option: --r={SECRET} could match --rate, --resume",
            "ambiguous option: --r could match --rate, --resume",
        ),
        (f"unrecognized arguments: --x={SECRET} {SECRET}", "unrecognized arguments: --x"),
        (f"unrecognized arguments: {SECRET}", "unrecognized arguments: extra values"),
        (
            "the following arguments are required: --to, --lat",
            "the following arguments are required: --to, --lat",
        ),
        (f"something new: {SECRET}", "invalid command line (see --help)"),
    ],
)
def test_without_values(message: str, shown: str) -> None:
    assert without_values(message) == shown


# -- empty, missing and malformed inputs ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"), [("in.jsonl", ""), ("in.csv", ""), ("in.csv", "to,latitude,longitude\n")]
)
async def test_an_empty_input_is_bad_input(
    fake: FakeDialog360, tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = await _run("broadcast", str(path), env=_environment(fake))
    assert (code, out, err) == (2, "", f"dialog360: {path}: no messages\n")


async def test_a_missing_input_is_one_line(fake: FakeDialog360, tmp_path: Path) -> None:
    path = tmp_path / "gone.jsonl"
    code, out, err = await _run("broadcast", str(path), env=_environment(fake))
    assert (code, out, err) == (2, "", f"dialog360: {path}: no such file\n")


async def test_a_wrong_csv_header_names_both_layouts(fake: FakeDialog360, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("to,lat,lon\n+15550001,1,2\n")
    code, _, err = await _run("broadcast", str(path), env=_environment(fake))
    assert code == 2
    assert err.startswith(f"dialog360: {path}:1: unknown column 'lat' (expected ")
    assert "to,latitude,longitude[,name,address]" in err
    assert "to,formatted_name[,first_name,last_name,phone]" in err
    assert len(err.splitlines()) == 1
    assert not fake.requests


@pytest.mark.parametrize("on_premise", [False, True])
async def test_block_and_blocked_print_one_form(fake: FakeDialog360, on_premise: bool) -> None:
    fake.engage(USERS[0])
    env = _environment(fake)
    api = ["--on-premise"] if on_premise else []
    code, out, err = await _run(*api, "block", "+1 555-0001", env=env)
    assert (code, out) == (0, "added 15550001\n"), err
    code, out, err = await _run(*api, "blocked", env=env)
    assert (code, out) == (0, "15550001\n"), err
    code, out, err = await _run(*api, "unblock", "+15550001", env=env)
    assert (code, out) == (0, "removed 15550001\n"), err


# -- exit statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"),
    [(None, 0), (131026, 1), (131048, 3)],
    ids=["all sent", "one failed", "channel halted"],
)
async def test_broadcast_exit_status(
    fake: FakeDialog360, tmp_path: Path, fault: int | None, status: int
) -> None:
    if fault is not None:
        fake.fail_recipient(USERS[0], code=fault, message="injected")
    path = _jsonl(tmp_path / "in.jsonl", USERS)
    argv = ["broadcast", str(path), "--concurrency", "1", "--rate", "0"]
    code, out, err = await _run(*argv, env=_environment(fake))
    assert code == status, err
    assert len(out.splitlines()) == len(USERS)
    assert ("halted:" in err) == (status == 3)


async def test_exit_statuses_are_documented() -> None:
    for argv in (["--help"], ["broadcast", "--help"]):
        code, out, _ = await _run(*argv, env=_env())
        assert code == 0
        text = " ".join(out.split())
        assert "1 some failed or unknown" in text or "message failed or unknown" in text
        assert "2 bad usage or input" in text
        assert "3 a broadcast channel was halted" in text or "3 a channel was halted" in text
