"""The HTML delivery report: every value escaped, nothing outside the file, and it renders in
real headless Chromium (.ci/run installs it; the test never skips) without touching the network.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import attrs
from aiohttp import web

from dialog360_async._report import DeliveryReport, FailureCount
from dialog360_async.cli._html import render_html
from dialog360_async.cli._report import render_table

SCRIPT = "<script>alert('campaign')</script>"
TITLE = '"><img src=x onerror=alert(1)><style>@import url(https://evil.example/x.css)</style>'
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Every name resolves to nothing; only the loopback IP of the counting server is reachable.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def report(campaign: str = f"spring {SCRIPT}", title: str = TITLE) -> DeliveryReport:
    return DeliveryReport(
        campaign=campaign,
        messages=1000,
        accepted=945,
        unknown_settled=5,
        unknown=3,
        rejected=40,
        cancelled=2,
        pending=0,
        sent=950,
        delivered=900,
        read=700,
        undelivered=30,
        unconfirmed=20,
        failures=(
            FailureCount(
                status="failed",
                reason="not-engaged",
                code=131047,
                meaning="re-engagement: more than 24 h since the user wrote",
                count=25,
            ),
            FailureCount(
                status="undelivered", reason="undelivered", code=131049, meaning=title, count=30
            ),
            FailureCount(status="failed", reason="transport", code=None, meaning="", count=15),
        ),
        orphans=2,
        generated_at=1767225600.0,
    )


class Page(HTMLParser):
    """Every tag, attribute and text node of a page, and the values marked ``data-metric``."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str]] = []
        self.metrics: dict[str, list[str]] = {}
        self.text: list[str] = []
        self.styles: list[str] = []
        self._metric: str | None = None
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self._metric = dict(attrs).get("data-metric")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._metric = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_style:
            self.styles.append(data)
        if self._metric is not None:
            self.metrics.setdefault(self._metric, []).append(data.strip())


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.access(found, os.X_OK), "no chromium: `apt-get install -y chromium` (.ci/run does)"
    return found


async def run_chromium(tmp_path: Path, *args: str) -> bytes:
    profile = tmp_path / "chromium-profile"
    process = await asyncio.create_subprocess_exec(
        chromium(),
        *FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    return out


def test_hostile_values_are_text_not_markup() -> None:
    html = render_html(report())
    page = Page(html)
    assert "<script" not in html and "<img" not in html and "<style>@" not in html
    assert page.tags["script"] == page.tags["img"] == page.tags["link"] == 0
    assert page.tags["style"] == 1 and "@import" not in page.styles[0]
    assert not [a for a in page.attributes if a[1].startswith("on")]
    text = "".join(page.text)
    assert f"spring {SCRIPT}" in text  # shown as the text it is, in the title and the header
    assert TITLE in text  # the table has the whole title; the chart a cut of it


def test_terminal_table_neutralizes_control_characters() -> None:
    table = render_table(report(campaign="a\x1b[2J\nb", title="t\r\x07"))
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "campaign a\\x1b[2J\\nb" in table and "t\\r\\x07" in table
    lines = table.splitlines()
    assert lines[2].split() == ["messages", "1000"]
    assert lines[4].split()[:3] == ["delivered", "900", "94.7%"]
    assert any(line.split()[:3] == ["30", "undelivered", "131049"] for line in lines)
    assert any(line.split()[:3] == ["15", "failed", "transport"] for line in lines)


def test_page_needs_nothing_outside_itself() -> None:
    page = Page(render_html(report()))
    linked = [a for a in page.attributes if a[1] in {"src", "href", "xlink:href", "srcset"}]
    assert linked == []
    assert page.tags["script"] == page.tags["iframe"] == page.tags["object"] == 0
    assert "url(" not in page.styles[0] and "@import" not in page.styles[0]
    policy = [v for tag, name, v in page.attributes if name == "content" and "default-src" in v]
    assert policy == ["default-src 'none'; style-src 'unsafe-inline'"]
    assert page.tags["svg"] == 2  # the funnel and the failures


def test_no_failures_says_so() -> None:
    quiet = attrs.evolve(report(), failures=())
    page = Page(render_html(quiet))
    assert page.tags["svg"] == 1 and "No failures." in "".join(page.text)
    assert "failures by code:\n  none\n" in render_table(quiet)


async def test_chromium_renders_the_numbers_and_loads_nothing(tmp_path: Path) -> None:
    hits: list[str] = []

    async def count(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        bait = f"http://127.0.0.1:{port}"
        # The control: a page that does load from the counting server is seen loading.
        control = tmp_path / "control.html"
        control.write_text(f'<!DOCTYPE html><img src="{bait}/control.png"><p>ok</p>')
        await run_chromium(tmp_path, "--dump-dom", control.as_uri())
        assert hits == ["/control.png"]
        hits.clear()

        shown = report(
            campaign=f'<img src="{bait}/campaign.png">{SCRIPT}',
            title=f'<link rel="stylesheet" href="{bait}/title.css"><img src="{bait}/t.png">',
        )
        path = tmp_path / "report.html"
        path.write_text(render_html(shown), encoding="utf-8")
        dom = (await run_chromium(tmp_path, "--dump-dom", path.as_uri())).decode()
        shot = tmp_path / "report.png"
        await run_chromium(
            tmp_path, f"--screenshot={shot}", "--window-size=1000,800", path.as_uri()
        )
    finally:
        await runner.cleanup()
    assert hits == []
    page = Page(dom)
    assert page.tags["svg"] == 2 and page.tags["rect"] == 4 + 3 and page.tags["img"] == 0
    for field in ("messages", "sent", "delivered", "read", "undelivered", "unconfirmed", "unknown"):
        shown_values = page.metrics[field]
        assert shown_values[-1] == str(getattr(shown, field))  # the table's cell
        if field in {"messages", "sent", "delivered", "read"}:
            assert shown_values[0].split()[0] == str(getattr(shown, field))  # the bar's label
    assert page.metrics["delivered"][0] == "900 (94.7% of sent)"
    assert f'<img src="{bait}/campaign.png">{SCRIPT}' in "".join(page.text)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1000, 800)
