"""Bar charts as inline SVG, drawn here so that a report is one file without scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colours that stay apart in greyscale print too (light to dark).
PALETTE = ("#2b6cb0", "#9bbbe0", "#c05621", "#2d3748")
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    name: str
    colour: str


def _ticks(top: int) -> list[int]:
    """Gridline values from 0 to at least `top`, a round step apart (1, 2, 5, 10, 20, 50 ...)."""
    step = 1
    while top / step > 5:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return list(range(0, -(-max(top, 1) // step) * step + 1, step))


def bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[int]]],
    series: Sequence[Series],
    *,
    label_width: int = 160,
    width: int = 640,
) -> str:
    """Horizontal bars, one per row, stacked by series, with a legend and an axis."""
    bar, gap, top_pad = 16, 6, 34
    height = top_pad + len(rows) * (bar + gap) + 24
    plot = width - label_width - 50
    peak = max((sum(values) for _, values in rows), default=0)
    ticks = _ticks(peak)
    scale = plot / max(ticks[-1], 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    x = label_width
    for s in series:  # legend
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{s.colour}"/>')
        out.append(f'<text x="{x + 14}" y="13">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    bottom = top_pad + len(rows) * (bar + gap)
    for tick in ticks:
        tx = label_width + tick * scale
        out.append(
            f'<line x1="{tx:.1f}" y1="{top_pad - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{tx:.1f}" y="{bottom + 14}" text-anchor="middle">{tick}</text>')
    for i, (label, values) in enumerate(rows):
        y = top_pad + i * (bar + gap)
        short = escape(label if len(label) <= 26 else label[:25] + "…")
        out.append(
            f'<text x="{label_width - 6}" y="{y + bar - 4}" text-anchor="end">{short}</text>'
        )
        x0 = float(label_width)
        for value, s in zip(values, series, strict=True):
            if value:
                w = value * scale
                out.append(
                    f'<rect class="bar" x="{x0:.1f}" y="{y}" width="{max(w, 1):.1f}" '
                    f'height="{bar}" fill="{s.colour}"><title>{escape(label)}, {escape(s.name)}: '
                    f"{value}</title></rect>"
                )
                x0 += w
        out.append(f'<text x="{x0 + 4:.1f}" y="{y + bar - 4}">{sum(values)}</text>')
    out.append("</svg>")
    return "".join(out)


def columns(title: str, points: Sequence[tuple[str, int]], *, width: int = 640) -> str:
    """Vertical bars over time (one per day), labelled every few bars."""
    height, left, top, bottom_pad = 200, 40, 12, 36
    plot_h = height - top - bottom_pad
    plot_w = width - left - 10
    peak = max((v for _, v in points), default=0)
    ticks = _ticks(peak)
    scale = plot_h / max(ticks[-1], 1)
    step = plot_w / max(len(points), 1)
    every = max(1, len(points) // 10)
    base = top + plot_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    for tick in ticks:
        ty = base - tick * scale
        out.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - 10}" y2="{ty:.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 4}" y="{ty + 4:.1f}" text-anchor="end">{tick}</text>')
    for i, (label, value) in enumerate(points):
        x = left + i * step
        h = value * scale
        out.append(
            f'<rect class="bar" x="{x + step * 0.1:.1f}" y="{base - h:.1f}" '
            f'width="{max(step * 0.8, 1):.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if i % every == 0:
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{base + 14}" text-anchor="middle">'
                f"{escape(label[5:])}</text>"
            )
    out.append("</svg>")
    return "".join(out)
