"""Plots as inline SVG, drawn on the server: a bar chart, a line chart, a progress bar.

Used by the dashboard's pages (:mod:`mien.server.ui`): the fleet's distribution by persona
and state, a rollout's progress, metric series once instances report them. No JavaScript
library draws anything; every label is escaped here, so a persona called ``<script>`` is
text in the picture. The functions are pure (data in, markup out) and unit-tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#3b6ea5", "#5a9e4b", "#d08a2c", "#b94a48", "#7a5aa6", "#4a9a9e", "#8a8a8a")


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (x, y) pairs, x increasing."""

    label: str
    points: Sequence[tuple[float, float]]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _frame(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _ticks(top: float, count: int = 4) -> list[float]:
    if top <= 0:
        return [0.0]
    return [top * i / count for i in range(count + 1)]


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 480,
    bar_height: int = 22,
    unit: str = "",
) -> Markup:
    """Horizontal bars, one per (label, value), longest scaled to the width; labels left,
    values right. An empty sequence draws the title and "no data"."""
    label_w, value_w, pad = 160, 60, 6
    height = max(1, len(bars)) * (bar_height + pad) + pad
    body: list[str] = []
    if not bars:
        body.append(f'<text x="{pad}" y="{height - pad - 4}" class="empty">no data</text>')
        return _frame(width, height, title, body)
    top = max(0.0, *(v for _l, v in bars))
    span = width - label_w - value_w - 2 * pad
    for i, (label, value) in enumerate(bars):
        y = pad + i * (bar_height + pad)
        length = 0.0 if top <= 0 else max(0.0, value) / top * span
        color = PALETTE[i % len(PALETTE)]
        body.append(
            f'<text x="{label_w - pad}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" '
            f'class="label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_height}" '
            f'fill="{color}"><title>{escape(label)}: {escape(_num(value))}{escape(unit)}'
            f"</title></rect>"
            f'<text x="{label_w + length + pad:.1f}" y="{y + bar_height * 0.7:.1f}" '
            f'class="value">{escape(_num(value))}{escape(unit)}</text>'
        )
    return _frame(width, height, title, body)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    width: int = 520,
    height: int = 220,
    unit: str = "",
) -> Markup:
    """Lines over a shared x range, y from 0 (or the lowest value if negative) to the
    highest; a legend names each series. Fewer than one point in all: "no data"."""
    left, right, top_pad, bottom = 48, 12, 12, 40
    points = [p for s in series for p in s.points]
    body: list[str] = []
    if not points:
        body.append(f'<text x="{left}" y="{height / 2:.0f}" class="empty">no data</text>')
        return _frame(width, height, title, body)
    xs = [x for x, _y in points]
    ys = [y for _x, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, *ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    plot_w = width - left - right
    plot_h = height - top_pad - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top_pad + plot_h - (y - y0) / (y1 - y0) * plot_h

    body.append(
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" class="axis"/>'
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" class="axis"/>'
    )
    for tick in _ticks(y1 - y0):
        value = y0 + tick
        y = sy(value)
        body.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(_num(value))}{escape(unit)}</text>"
        )
    for i, s in enumerate(series):
        if not s.points:
            continue
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2">'
            f"<title>{escape(s.label)}</title></polyline>"
        )
        lx = left + (i % 4) * (plot_w / 4)
        ly = height - 10 - (i // 4) * 14
        body.append(
            f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14:.1f}" y="{ly}" class="legend">{escape(s.label)}</text>'
        )
    return _frame(width, height, title, body)


def progress_bar(
    parts: Sequence[tuple[str, int]], total: int, *, title: str, width: int = 520
) -> Markup:
    """One bar split into (label, count) parts of ``total`` (the rest drawn empty), with a
    legend: a rollout's applied / failed / applying / waiting."""
    height, bar = 46, 20
    body = [f'<rect x="0" y="0" width="{width}" height="{bar}" class="track"/>']
    x = 0.0
    legend_x = 0.0
    for i, (label, count) in enumerate(parts):
        share = 0.0 if total <= 0 else count / total * width
        color = PALETTE[i % len(PALETTE)]
        if share > 0:
            body.append(
                f'<rect x="{x:.1f}" y="0" width="{share:.1f}" height="{bar}" fill="{color}">'
                f"<title>{escape(label)}: {count}</title></rect>"
            )
        x += share
        body.append(
            f'<rect x="{legend_x:.1f}" y="{bar + 12}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14:.1f}" y="{bar + 21}" class="legend">'
            f"{escape(label)} {count}</text>"
        )
        legend_x += 130
    return _frame(width, height, title, body)
