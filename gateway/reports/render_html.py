"""A report as one self-contained HTML file: inline CSS (print too), SVG charts, no scripts."""

from __future__ import annotations

import base64
import hashlib
from html import escape

from gateway.reports import svg
from gateway.reports.model import Anomaly, Report, iso, shown
from gateway.reports.svg import PALETTE, Series
from gateway.reports.tables import Cell, Section, Table, sections, totals

CHART_ROWS = 15  # bars per chart; the table below it lists more

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #1a202c; margin: 2em auto;
       max-width: 60em; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em;
     border-bottom: 1px solid #cbd5e0; padding-bottom: 0.2em; }
.meta, .note { color: #4a5568; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #cbd5e0; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #edf2f7; }
.anomaly { border-left: 4px solid #c05621; padding: 0.3em 0.8em; margin: 0.8em 0;
           background: #fffaf0; }
.anomaly dl { display: grid; grid-template-columns: max-content auto; gap: 0 1em; margin: 0.3em 0; }
.anomaly dt { color: #4a5568; } .anomaly dd { margin: 0; }
.totals { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.totals div { border: 1px solid #cbd5e0; padding: 0.3em 0.8em; min-width: 9em; }
.totals dt { color: #4a5568; font-size: 0.85em; } .totals dd { margin: 0; font-size: 1.3em; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 0.6em 0; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; } table, svg.chart, .anomaly { break-inside: avoid; }
  .anomaly { background: none; }
}
"""
# The CSP hash of the one inline stylesheet: pages that serve a report allow it alone.
STYLE_SHA256 = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()


def _cell(value: Cell) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, int | float):
        return f'<td class="n">{value}</td>'
    return f"<td>{escape(value)}</td>"


def _table(t: Table) -> str:
    if not t.rows:
        return '<p class="note">None.</p>'
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in t.headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows[: t.limit])
    more = (
        f'<p class="note">… and {len(t.rows) - t.limit} more rows (the JSON report lists all).</p>'
        if len(t.rows) > t.limit
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _anomaly(a: Anomaly) -> str:
    items = "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(shown(v))}</dd>" for k, v in a.evidence.items()
    )
    return (
        f'<div class="anomaly" data-kind="{escape(a.kind)}"><strong>{escape(a.kind)}</strong>: '
        f"{escape(a.summary)}<dl>{items}</dl></div>"
    )


def charts(report: Report) -> dict[str, str]:
    """SVG charts, by the key of the section they illustrate."""
    found = {
        "daily": svg.columns(
            "Messages accepted per day", [(d.day, d.messages) for d in report.daily]
        )
    }
    if report.volume:
        found["volume"] = svg.bars(
            "Messages accepted by principal",
            [(v.principal, [v.messages]) for v in report.volume[:CHART_ROWS]],
            [Series("messages", PALETTE[0])],
        )
    if report.phi_by_mode:
        found["phi_modes"] = svg.bars(
            "PHI recipients by delivery mode",
            [(m.mode, [m.delivered, m.deferred, m.bounced]) for m in report.phi_by_mode],
            [
                Series(n, c)
                for n, c in zip(("delivered", "deferred", "bounced"), PALETTE, strict=False)
            ],
        )
    if report.refusals_by_rule:
        found["refusals"] = svg.bars(
            "Refused and held recipients by rule",
            [
                (f"{r.rule} ({r.action})", [r.recipients])
                for r in report.refusals_by_rule[:CHART_ROWS]
            ],
            [Series("recipients", PALETTE[2])],
        )
    if report.tls:
        found["tls"] = svg.bars(
            "TLS by recipient domain (attempts)",
            [
                (t.domain, [t.verified, t.unverified, max(t.no_tls - t.failures, 0), t.failures])
                for t in report.tls[:CHART_ROWS]
            ],
            [
                Series(n, c)
                for n, c in zip(
                    ("verified", "unverified", "no TLS", "failed"), PALETTE, strict=True
                )
            ],
        )
    return found


def _section(section: Section, chart: str | None) -> str:
    parts = [f'<section id="{section.key}"><h2>{escape(section.title)}</h2>']
    if chart:
        parts.append(chart)
    parts += [_table(t) for t in section.tables]
    parts += [f'<p class="note">{escape(line)}</p>' for line in section.lines]
    parts.append("</section>")
    return "".join(parts)


def render(report: Report) -> str:
    title = f"phigate compliance report {iso(report.since)} to {iso(report.until)}"
    drawn = charts(report)
    shown, left_out = report.anomalies_shown()
    found = "".join(_anomaly(a) for a in shown) or '<p class="note">None.</p>'
    if left_out:
        found += f'<p class="note">{escape(left_out)}</p>'
    methods = "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report.methods.items()
    )
    body = "".join(_section(s, drawn.get(s.key)) for s in sections(report))
    key_figures = "".join(
        f"<div><dt>{escape(name)}</dt><dd>{escape(value)}</dd></div>"
        for name, value in totals(report)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Compliance report</h1>"
        f'<p class="meta">{escape(iso(report.since))} to {escape(iso(report.until))} · generated '
        f"{escape(iso(report.generated_at))} · metadata only: no addresses, subjects or content</p>"
        f'<dl class="totals">{key_figures}</dl>'
        f'<section id="anomalies"><h2>Anomalies ({len(report.anomalies)})</h2>{found}</section>'
        f"{body}"
        f'<section id="methods"><h2>How anomalies are found</h2><dl>{methods}</dl></section>'
        "</body></html>\n"
    )
