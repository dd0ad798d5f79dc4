"""``dialog360 send-text``, ``send-template`` and template broadcasts, end to end against the
bundled fake: the exact bodies it received, and bad input refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dialog360_async.testing import FakeDialog360

from .test_cli import USERS, Cli

NS = "ns_0123"
CLOUD = {"messaging_product": "whatsapp", "recipient_type": "individual"}


@pytest.fixture(name="cli")
def _cli(fake: FakeDialog360, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(fake, capsys)


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _bodies(fake: FakeDialog360) -> list[dict[str, Any]]:
    """The message bodies the fake received, by recipient (a broadcast sends concurrently)."""
    posts = [r.json for r in fake.requests if r.method == "POST" and r.path.endswith("messages")]
    return sorted(posts, key=lambda body: str(body["to"]))


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- send-text ------------------------------------------------------------------------------


async def test_send_text_cloud(cli: Cli, fake: FakeDialog360) -> None:
    code = await cli("send-text", USERS[0], "See https://example.com", "--preview-url")
    assert code == 0, cli.err
    assert cli.out.startswith("wamid.") and cli.out.count("\n") == 1
    assert fake.requests[-1].path == "/messages"
    assert fake.requests[-1].json == {
        **CLOUD,
        "to": USERS[0],
        "type": "text",
        "text": {"body": "See https://example.com", "preview_url": True},
    }


async def test_send_text_on_premise(cli: Cli, fake: FakeDialog360) -> None:
    assert await cli("--on-premise", "send-text", USERS[1], "Hello") == 0, cli.err
    assert fake.requests[-1].path == "/v1/messages"
    assert fake.requests[-1].json == {
        "to": USERS[1],
        "type": "text",
        "text": {"body": "Hello", "preview_url": False},
    }


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["", "Hello"], "dialog360: to: "),
        ([USERS[0], ""], "dialog360: TextMessage.body: must be 1 to 4096 characters, got 0\n"),
        ([USERS[0], "x" * 4097], "dialog360: TextMessage.body: must be 1 to 4096 characters"),
    ],
)
async def test_send_text_bad_input(
    cli: Cli, fake: FakeDialog360, argv: list[str], error: str
) -> None:
    assert await cli("send-text", *argv) == 2
    assert cli.err.startswith(error) and len(cli.err.splitlines()) == 1
    assert not fake.requests


# -- send-template --------------------------------------------------------------------------

TEMPLATE_ARGV = [
    "send-template",
    USERS[0],
    "order_update",
    "--language",
    "en_US",
    "--namespace",
    NS,
    "--param",
    "Ada",
    "--param",
    "A-1001",
    "--header-image",
    "https://example.com/a.png",
]
TEMPLATE_COMPONENTS = [
    {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": "https://example.com/a.png"}}],
    },
    {"type": "body", "parameters": [_text("Ada"), _text("A-1001")]},
]


async def test_send_template_cloud_drops_the_namespace(cli: Cli, fake: FakeDialog360) -> None:
    fake.add_template("order_update", "en_US", body_params=2, header="image")
    assert await cli(*TEMPLATE_ARGV) == 0, cli.err
    assert cli.out.startswith("wamid.")
    assert fake.requests[-1].json == {
        **CLOUD,
        "to": USERS[0],
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": TEMPLATE_COMPONENTS,
        },
    }


async def test_send_template_on_premise(cli: Cli, fake: FakeDialog360) -> None:
    fake.add_template("order_update", "en_US", body_params=2, header="image")
    assert await cli("--on-premise", *TEMPLATE_ARGV) == 0, cli.err
    assert fake.requests[-1].path == "/v1/messages"
    assert fake.requests[-1].json == {
        "to": USERS[0],
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"policy": "deterministic", "code": "en_US"},
            "components": TEMPLATE_COMPONENTS,
            "namespace": NS,
        },
    }


async def test_send_template_without_variables_and_a_text_header(
    cli: Cli, fake: FakeDialog360
) -> None:
    assert await cli("send-template", USERS[2], "hello_world", "--language", "en") == 0, cli.err
    assert fake.requests[-1].json["template"] == {"name": "hello_world", "language": {"code": "en"}}
    argv = ["send-template", USERS[2], "promo", "--language", "de", "--header-text", "Hallo"]
    assert await cli(*argv) == 0, cli.err
    assert fake.requests[-1].json["template"]["components"] == [
        {"type": "header", "parameters": [_text("Hallo")]}
    ]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["Order_Update", "--language", "en"], "dialog360: Template.name: must be 1 to 512"),
        (["order", "--language", "english"], "dialog360: Template.language: must be a language"),
        (
            ["order", "--language", "en", "--param", "a", "--param", " "],
            "dialog360: --param 2: must not be empty\n",
        ),
        (
            ["order", "--language", "en", "--header-video", "http://example.com/v.mp4"],
            "dialog360: --header-video: must be an https:// URL",
        ),
        (
            ["order", "--language", "en", "--header-text", "x" * 61],
            "dialog360: --header-text: must be at most 60 characters, got 61\n",
        ),
        (["order", "--language", "en", "--namespace", "a b"], "dialog360: Template.namespace: "),
        (["order"], "the following arguments are required: --language"),
        (
            ["order", "--language", "en", "--header-text", "a", "--header-image", "https://a.b/c"],
            "argument --header-image: not allowed with argument --header-text",
        ),
    ],
)
async def test_send_template_bad_input_sends_nothing(
    cli: Cli, fake: FakeDialog360, argv: list[str], error: str
) -> None:
    assert await cli("send-template", USERS[0], *argv) == 2
    assert error in cli.err
    assert not fake.requests


async def test_send_template_on_premise_needs_the_namespace(cli: Cli, fake: FakeDialog360) -> None:
    assert await cli("--on-premise", "send-template", USERS[0], "hello", "--language", "en") == 2
    assert cli.err.startswith("dialog360: Template.namespace: is required by the On-Premise API")
    assert not fake.requests


async def test_send_template_the_fake_does_not_know(cli: Cli, fake: FakeDialog360) -> None:
    fake.add_template("order_update", "en_US", body_params=2)
    assert await cli("send-template", USERS[0], "order_update", "--language", "de") == 1
    assert cli.err.startswith("dialog360: ") and "132001" in cli.err
    assert not cli.out


# -- broadcast ------------------------------------------------------------------------------

CSV = """\
to,body.2,key,body.1,header.text
+15550001,A-1,k1,Ada,Hi Ada
+15550002,B-2,,Bob,Hi Bob

+15550003,"C,3",k3,Cy,Hi Cy
"""


def _template(to: str, *texts: str, header: str, namespace: bool = False) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [_text(header)]},
            {"type": "body", "parameters": [_text(t) for t in texts]},
        ],
    }
    if namespace:
        template["language"] = {"policy": "deterministic", "code": "en_US"}
        template["namespace"] = NS
    return {**({} if namespace else CLOUD), "to": to, "type": "template", "template": template}


async def test_csv_template_broadcast_fills_each_rows_variables(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    fake.add_template("order_update", "en_US", body_params=2, header="text")
    path = _write(tmp_path / "in.csv", CSV)
    argv = ["broadcast", path, "--rate", "0", "--template", "order_update", "--language", "en_US"]
    assert await cli(*argv) == 0, cli.err
    assert _bodies(fake) == [
        _template(USERS[0], "Ada", "A-1", header="Hi Ada"),
        _template(USERS[1], "Bob", "B-2", header="Hi Bob"),
        _template(USERS[2], "Cy", "C,3", header="Hi Cy"),
    ]
    results = {r["to"]: r for r in cli.results()}
    assert {to: r["status"] for to, r in results.items()} == dict.fromkeys(USERS, "sent")
    assert results[USERS[0]]["key"] == "k1" and results[USERS[2]]["key"] == "k3"


async def test_csv_template_broadcast_on_premise(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    path = _write(tmp_path / "in.csv", "to,header.text,body.1\n+15550001,Hi,Ada\n")
    argv = ["broadcast", path, "--rate", "0", "--template", "order_update", "--language", "en_US"]
    assert await cli("--on-premise", *argv) == 2
    assert cli.err == "dialog360: --on-premise needs --namespace NS: On-Premise templates name it\n"
    assert await cli("--on-premise", *argv, "--namespace", NS) == 0, cli.err
    assert _bodies(fake) == [_template(USERS[0], "Ada", header="Hi", namespace=True)]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "to,body.1,body.2\n+15550001,a,b\n+15550002,a,\n",
            "in.csv:3: body.2: must not be empty",
        ),
        ("to,body.1\n+15550001,a\n+15550002,a,b\n", "in.csv:3: expected 2 fields, got 3"),
        ("to,body.1\n+15550001,a\nnope,b\n", "in.csv:3: to: "),
        (
            "to,header.image\n+15550001,https://a.b/c.png\n+15550002,http://a.b/c.png\n",
            "in.csv:3: header.image: must be an https:// URL",
        ),
        ("to,body.2\n+15550001,a\n", "in.csv:1: missing column 'body.1' (expected to,body.1,"),
        ("to,body.1,name\n+15550001,a,b\n", "in.csv:1: unknown column 'name' (expected to,"),
        ("to,body.01\n+15550001,a\n", "in.csv:1: unknown column 'body.01'"),
        ("body.1\na\n", "in.csv:1: missing column 'to'"),
        ("to,body.1,body.1\n+15550001,a,b\n", "in.csv:1: duplicate column 'body.1'"),
        (
            "to,header.text,header.image\n+15550001,a,https://a.b/c\n",
            "in.csv:1: a second header column 'header.image'",
        ),
        (
            f"to,header.text\n+15550001,{'x' * 61}\n",
            "in.csv:2: header.text: must be at most 60 characters, got 61",
        ),
        ("to,body.1\n+15550001,a\n+15550001,a\n", "in.csv:3: duplicate of line 2"),
    ],
)
async def test_a_bad_template_csv_is_reported_by_line_and_nothing_is_sent(
    cli: Cli, fake: FakeDialog360, tmp_path: Path, text: str, error: str
) -> None:
    path = _write(tmp_path / "in.csv", text)
    argv = ["broadcast", path, "--template", "order_update", "--language", "en_US"]
    assert await cli(*argv) == 2
    assert f"dialog360: {tmp_path}/{error}" in cli.err
    assert not fake.requests and not cli.out


async def test_template_columns_without_template_name_the_layout(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    path = _write(tmp_path / "in.csv", "to,body.1\n+15550001,a\n")
    assert await cli("broadcast", path) == 2
    assert cli.err.startswith(f"dialog360: {path}:1: unknown column 'body.1' (expected ")
    assert "or with --template to,body.1,...,body.N[,header.text|" in cli.err
    assert not fake.requests


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("in.csv", ["--template", "t"], "--template needs --language CODE (e.g. en_US)"),
        ("in.csv", ["--language", "en"], "--language and --namespace go with --template NAME"),
        ("in.csv", ["--namespace", NS], "--language and --namespace go with --template NAME"),
        ("in.jsonl", ["--template", "t", "--language", "en"], "--template fills the columns"),
        (
            "in.csv",
            ["--template", "t", "--language", "en", "--format", "jsonl"],
            "--template fills",
        ),
        ("in.csv", ["--template", "T", "--language", "en"], "Template.name: must be 1 to 512"),
    ],
)
async def test_template_options_are_checked_before_anything_is_read(
    cli: Cli, fake: FakeDialog360, tmp_path: Path, name: str, options: list[str], error: str
) -> None:
    path = _write(tmp_path / name, "to,body.1\n+15550001,a\n")
    assert await cli("broadcast", path, *options) == 2
    assert cli.err.startswith(f"dialog360: {error}")
    assert not fake.requests


async def test_template_csv_on_stdin(
    cli: Cli, fake: FakeDialog360, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("to,body.1\n+15550001,Ada\n"))
    argv = ["broadcast", "-", "--format", "csv", "--template", "t", "--language", "en"]
    assert await cli(*argv, "--rate", "0") == 0, cli.err
    assert [b["template"]["components"] for b in _bodies(fake)] == [
        [{"type": "body", "parameters": [_text("Ada")]}]
    ]


async def test_a_template_the_fake_does_not_know_fails_with_132001(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    fake.add_template("order_update", "en_US", body_params=1)
    path = _write(tmp_path / "in.csv", "to,body.1\n+15550001,Ada\n+15550002,Bob\n")
    argv = ["broadcast", path, "--rate", "0", "--template", "order_updates", "--language", "en_US"]
    assert await cli(*argv) == 1
    results = cli.results()
    assert [(r["status"], r["code"]) for r in results] == [("failed", 132001)] * 2
    assert all("132001" in str(r["error"]) for r in results)
    assert fake.sends == {}


async def test_jsonl_text_and_template_lines(cli: Cli, fake: FakeDialog360, tmp_path: Path) -> None:
    template = {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [_text("Ada"), _text("A-1")]}],
    }
    lines = [
        {"to": USERS[0], "type": "text", "text": {"body": "Hello", "preview_url": True}},
        {"to": USERS[1], "template": template, "key": "t1"},
    ]
    path = _write(tmp_path / "in.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    assert await cli("broadcast", path, "--rate", "0") == 0, cli.err
    assert _bodies(fake) == [
        {**CLOUD, "to": USERS[0], "type": "text", "text": {"body": "Hello", "preview_url": True}},
        {**CLOUD, "to": USERS[1], "type": "template", "template": template},
    ]
    assert [r["status"] for r in cli.results()] == ["sent", "sent"]


async def test_a_bad_jsonl_template_line_is_reported_by_line(
    cli: Cli, fake: FakeDialog360, tmp_path: Path
) -> None:
    good = {"to": USERS[0], "type": "text", "text": {"body": "Hello"}}
    bad = {"to": USERS[1], "type": "template", "template": {"name": "x", "language": "en"}}
    path = _write(tmp_path / "in.jsonl", f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    assert await cli("broadcast", path) == 2
    assert cli.err.startswith(f"dialog360: {path}:2: ")
    assert not fake.requests
