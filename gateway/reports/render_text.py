"""A report as plain text: aligned tables, for a terminal or a mail body."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.reports.model import Anomaly, Report, iso, shown
from gateway.reports.tables import Cell, Table, sections, totals


def _cell(value: Cell) -> str:
    return "-" if value is None else str(value)


def table(t: Table) -> str:
    """Columns aligned, numbers to the right; says how many rows were left out."""
    if not t.rows:
        return "  (none)"
    shown = t.rows[: t.limit]
    cells = [[_cell(v) for v in row] for row in shown]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(t.headers)]
    numeric = [all(isinstance(row[i], int) for row in shown) for i in range(len(t.headers))]

    def line(words: Sequence[str]) -> str:
        aligned = (
            w.rjust(width) if n else w.ljust(width)
            for w, width, n in zip(words, widths, numeric, strict=True)
        )
        return ("  " + "  ".join(aligned)).rstrip()

    out = [line(t.headers), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    if len(t.rows) > t.limit:
        out.append(f"  ... and {len(t.rows) - t.limit} more (--format json lists all)")
    return "\n".join(out)


def anomaly(a: Anomaly) -> list[str]:
    lines = [f"  [{a.kind}] {a.summary}"]
    lines += [f"      {key}: {shown(value)}" for key, value in a.evidence.items()]
    return lines


def render(report: Report) -> str:
    out = [
        f"phigate compliance report, {iso(report.since)} to {iso(report.until)}",
        f"generated {iso(report.generated_at)}; metadata only: no addresses, subjects or content",
        "",
        *(f"  {name}: {value}" for name, value in totals(report)),
        "",
        f"Anomalies ({len(report.anomalies)})",
    ]
    shown, left_out = report.anomalies_shown()
    for a in shown:
        out += anomaly(a)
    if left_out:
        out.append(f"  {left_out}")
    if not report.anomalies:
        out.append("  (none)")
    for section in sections(report):
        out += ["", section.title]
        for t in section.tables:
            out += [table(t), ""]
        out += [f"  {line}" for line in section.lines]
        while out[-1] == "":
            out.pop()
    out += ["", "How anomalies are found"]
    out += [f"  {kind}: {method}" for kind, method in report.methods.items()]
    return "\n".join(out) + "\n"
