"""Server-side SVG charts: bars with a labelled value axis, category labels and a title; no script.

Every label goes through html.escape: model ids and key labels come from users.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal

WIDTH, BAR_H, GAP, LEFT, RIGHT, TOP = 640, 22, 8, 180, 90, 40


def _nice_max(value: Decimal) -> Decimal:
    """The axis end: the next 1, 2 or 5 × 10^n at or above the largest value."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        candidate = Decimal(step).scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)


def _fmt(value: Decimal, unit: str) -> str:
    text = (
        f"{value.normalize():f}" if value == value.to_integral() else f"{value:.9f}".rstrip("0").rstrip(".")
    )
    return f"{unit}{text}" if unit == "$" else f"{text}{unit}"


def bar_chart(
    title: str, bars: Sequence[tuple[str, Decimal]], unit: str = "$", chart_id: str = "chart"
) -> str:
    """A horizontal bar chart as inline SVG: role=img with a title and a text description."""
    esc = html.escape
    rows = list(bars)[:15] or [("no usage yet", Decimal(0))]
    top = _nice_max(max(v for _, v in rows))
    plot = WIDTH - LEFT - RIGHT
    height = TOP + len(rows) * (BAR_H + GAP) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{esc(chart_id)}" role="img" '
        f'aria-labelledby="{esc(chart_id)}-t {esc(chart_id)}-d" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">',
        f'<title id="{esc(chart_id)}-t">{esc(title)}</title>',
        f'<desc id="{esc(chart_id)}-d">{esc("; ".join(f"{n}: {_fmt(v, unit)}" for n, v in rows))}</desc>',
        f'<text x="0" y="18" class="chart-title">{esc(title)}</text>',
    ]
    axis_y = height - 24
    for i in range(5):  # value axis: 0, ¼, ½, ¾, max with grid lines
        x = LEFT + plot * i / 4
        tick = top * i / 4
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{axis_y}" class="grid"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" class="tick">{esc(_fmt(tick, unit))}</text>'
        )
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{LEFT + plot}" y2="{axis_y}" class="axis"/>')
    for i, (name, value) in enumerate(rows):
        y = TOP + i * (BAR_H + GAP)
        w = float(value / top) * plot if top else 0.0
        short = name if len(name) <= 26 else name[:25] + "…"
        parts.append(f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end" class="label">{esc(short)}</text>')
        parts.append(
            f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{BAR_H}" class="bar"><title>{esc(name)}: {esc(_fmt(value, unit))}</title></rect>'
        )
        parts.append(
            f'<text x="{LEFT + w + 6:.1f}" y="{y + 15}" class="value">{esc(_fmt(value, unit))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
