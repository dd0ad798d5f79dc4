"""A campaign's delivery report as one self-contained HTML page, and the funnel rows it shares
with the terminal table.

The page opens offline: inline CSS, inline SVG charts, no script, and a Content-Security-Policy
that lets it load nothing at all. Every value is escaped: campaign names and error titles come
from data (a status webhook's error title is whatever the sender of the POST wrote).
"""

from __future__ import annotations

import time
from html import escape
from typing import Final, NamedTuple

from .._report import DeliveryReport, FailureCount

__all__ = ["Row", "failure_label", "funnel", "generated", "render_html"]


class Row(NamedTuple):
    """One line of the funnel: what it counts, how many, and its share."""

    label: str
    metric: str  # the DeliveryReport field
    value: int
    share: str  # "95.0%" of messages, or "94.7% of sent"
    depth: int  # indentation: 1 for parts of `sent`, 2 for `read` (part of `delivered`)
    note: str = ""


def _pct(part: int, whole: int, of: str = "") -> str:
    if whole <= 0:
        return ""
    return f"{100 * part / whole:.1f}%" + (f" of {of}" if of else "")


def funnel(report: DeliveryReport) -> list[Row]:
    """The report's counts in reading order: sends first, then what became of the sent."""
    r = report
    return [
        Row("messages", "messages", r.messages, "", 0),
        Row("sent", "sent", r.sent, _pct(r.sent, r.messages), 0, "reached WhatsApp"),
        Row("delivered", "delivered", r.delivered, _pct(r.delivered, r.sent, "sent"), 1),
        Row("read", "read", r.read, _pct(r.read, r.sent, "sent"), 2),
        Row("undelivered", "undelivered", r.undelivered, _pct(r.undelivered, r.sent, "sent"), 1),
        Row(
            "unconfirmed",
            "unconfirmed",
            r.unconfirmed,
            _pct(r.unconfirmed, r.sent, "sent"),
            1,
            f"no status {r.horizon:g} s after the send",
        ),
        Row(
            "unknown settled",
            "unknown_settled",
            r.unknown_settled,
            _pct(r.unknown_settled, r.messages),
            0,
            "in doubt, then a status showed it sent (counted in sent)",
        ),
        Row(
            "still unknown",
            "unknown",
            r.unknown,
            _pct(r.unknown, r.messages),
            0,
            "may or may not have been sent: never resent",
        ),
        Row("rejected", "rejected", r.rejected, _pct(r.rejected, r.messages), 0, "send failed"),
        Row("cancelled", "cancelled", r.cancelled, _pct(r.cancelled, r.messages), 0),
        Row("pending", "pending", r.pending, _pct(r.pending, r.messages), 0, "claimed, no result"),
        Row("orphan statuses", "orphans", r.orphans, "", 0, "for message ids not in the campaign"),
    ]


def generated(report: DeliveryReport) -> str:
    """When the report was made, in UTC, or ``""`` if it does not say."""
    if report.generated_at <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.generated_at))


def failure_label(failure: FailureCount) -> str:
    """The code, or the reason for a failure without one."""
    return failure.reason if failure.code is None else str(failure.code)


_CSS: Final = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1d2330; background: #f6f7f9; margin: 0; padding: 24px; }
main { max-width: 940px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; }
.meta { color: #5b6473; margin: 0 0 16px; }
.card { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 16px;
  margin-bottom: 16px; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; fill: #1d2330; }
svg .label { font-weight: 600; }
svg .muted { fill: #5b6473; }
table { border-collapse: collapse; width: 100%; margin-top: 12px; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eceef2;
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.w { white-space: nowrap; }
td.d1 { padding-left: 28px; } td.d2 { padding-left: 46px; }
.note { color: #5b6473; }
.none { color: #5b6473; font-style: italic; }
"""

# Funnel bars: (label, field, colour); widths are shares of `messages`.
_BARS: Final = (
    ("messages", "messages", "#9aa3b2"),
    ("sent", "sent", "#3b7dd8"),
    ("delivered", "delivered", "#2f9e6e"),
    ("read", "read", "#1f6f4d"),
)
_LABEL_W, _BAR_W, _ROW_H = 110, 520, 34
_WIDTH = _LABEL_W + _BAR_W + 200
_CHAR_W = 7.5  # a 13px character, generously; the chart cuts what does not fit (the table not)


def _bar(width: float, *, largest: int, count: int) -> float:
    return 0.0 if largest <= 0 else max(width * count / largest, 2.0 if count else 0.0)


def _funnel_svg(report: DeliveryReport) -> str:
    shares = {row.metric: row.share for row in funnel(report)}
    rows = []
    for i, (label, field, colour) in enumerate(_BARS):
        count: int = getattr(report, field)
        share = shares[field]
        y = 8 + i * _ROW_H
        w = _bar(_BAR_W, largest=report.messages, count=count)
        text = f"{count}" + (f" ({share})" if share else "")
        rows.append(
            f'<text class="label" x="0" y="{y + 18}">{label}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="24" rx="3" fill="{colour}">'
            f"<title>{label}: {text}</title></rect>"
            f'<text x="{_LABEL_W + w + 8:.1f}" y="{y + 18}" data-metric="{field}">'
            f"{escape(text)}</text>"
        )
    height = 16 + len(_BARS) * _ROW_H
    return (
        f'<svg viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="delivery funnel">'
        + "".join(rows)
        + "</svg>"
    )


def _failures_svg(failures: tuple[FailureCount, ...]) -> str:
    largest = max(f.count for f in failures)
    rows = []
    for i, failure in enumerate(failures):
        y = 8 + i * _ROW_H
        w = _bar(_BAR_W * 0.55, largest=largest, count=failure.count)
        meaning = failure.meaning or failure.reason
        head = f"{failure.count} {failure.status}"
        room = int((_WIDTH - _LABEL_W - w - 8) / _CHAR_W) - len(head) - 3
        cut = meaning if len(meaning) <= room else meaning[: max(room - 1, 0)] + "…"
        rows.append(
            f'<text class="label" x="0" y="{y + 18}">{escape(failure_label(failure))}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="24" rx="3" '
            f'fill="{"#d9822b" if failure.status == "undelivered" else "#c94141"}">'
            f"<title>{escape(str(failure))}</title></rect>"
            f'<text x="{_LABEL_W + w + 8:.1f}" y="{y + 18}">{escape(head)}'
            f'<tspan class="muted"> · {escape(cut)}</tspan></text>'
        )
    height = 16 + len(failures) * _ROW_H
    return (
        f'<svg viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="failures by code">'
        + "".join(rows)
        + "</svg>"
    )


def _funnel_table(report: DeliveryReport) -> str:
    body = "".join(
        f'<tr><td class="d{row.depth}">{escape(row.label)}</td>'
        f'<td class="n" data-metric="{row.metric}">{row.value}</td>'
        f'<td class="n">{escape(row.share)}</td><td class="note">{escape(row.note)}</td></tr>'
        for row in funnel(report)
    )
    return (
        '<table><thead><tr><th></th><th class="n">messages</th><th class="n">share</th>'
        f"<th></th></tr></thead><tbody>{body}</tbody></table>"
    )


def _failures_table(failures: tuple[FailureCount, ...]) -> str:
    body = "".join(
        f'<tr><td class="n">{f.count}</td><td class="w">{escape(f.status)}</td>'
        f'<td class="w">{"" if f.code is None else f.code}</td>'
        f'<td class="w">{escape(f.reason)}</td>'
        f"<td>{escape(f.meaning)}</td></tr>"
        for f in failures
    )
    return (
        '<table><thead><tr><th class="n">messages</th><th>status</th><th>code</th>'
        f"<th>reason</th><th>meaning</th></tr></thead><tbody>{body}</tbody></table>"
    )


def render_html(report: DeliveryReport) -> str:
    """The report as one HTML page that needs nothing but itself (no script, no network)."""
    campaign = escape(report.campaign)
    when = generated(report)
    meta = f"campaign <strong>{campaign}</strong>"
    meta += f" · generated {when}" if when else ""
    meta += f" · unconfirmed after {report.horizon:g} s"
    if report.failures:
        failures = _failures_svg(report.failures) + _failures_table(report.failures)
    else:
        failures = '<p class="none">No failures.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # Nothing may load, whatever a value in the page turned out to be.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Delivery report: {campaign}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>Delivery report</h1><p class="meta">{meta}</p>'
        f'<section class="card"><h2>Delivery funnel</h2>{_funnel_svg(report)}</section>'
        f'<section class="card"><h2>Failures by code</h2>{failures}</section>'
        f'<section class="card"><h2>All counts</h2>{_funnel_table(report)}</section>'
        "</main></body></html>\n"
    )
