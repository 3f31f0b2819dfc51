"""The HTML report's charts, drawn as inline SVG in Python (no script, nothing downloaded).

Horizontal bar charts (one row per field or product; a row's bar may be split into segments such
as agree / differ) and a line chart of accuracy over past checks. Every text from data is escaped;
the page's stylesheet colours the CSS classes used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

CHAR_WIDTH = 7.0  # rough width of a 12px character, to size label columns
ROW_HEIGHT = 24
BAR_HEIGHT = 14
BAR_WIDTH = 420
VALUE_WIDTH = 150
MAX_LABEL_CHARS = 40
MIN_SEGMENT = 2.0  # pixels


@dataclass(frozen=True)
class BarRow:
    """One row of a bar chart: a label, the bar's segments (value, CSS class) and a caption."""

    label: str
    segments: tuple[tuple[float, str], ...]
    caption: str
    tooltip: str


@dataclass(frozen=True)
class TrendPoint:
    """One past check on the trend chart."""

    checked_at: datetime
    accuracy: float
    passed: bool


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".removesuffix(".0")


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def bar_chart(chart_id: str, title: str, rows: Sequence[BarRow], *, scale: float) -> str:
    """A horizontal bar chart; a bar of total ``scale`` fills the track."""
    label_width = min(max((len(_short(r.label)) for r in rows), default=8), MAX_LABEL_CHARS)
    left = label_width * CHAR_WIDTH + 16
    width = left + BAR_WIDTH + VALUE_WIDTH
    height = max(len(rows), 1) * ROW_HEIGHT + 8
    scale = scale if scale > 0 else 1.0
    parts = [
        f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    if not rows:
        parts.append(f'<text class="empty" x="0" y="{ROW_HEIGHT - 8}">nothing to show</text>')
    for i, row in enumerate(rows):
        top = 4 + i * ROW_HEIGHT
        mid = top + ROW_HEIGHT / 2
        bar_top = mid - BAR_HEIGHT / 2
        parts.append(f'<g class="bar-row" data-label="{_e(row.label)}">')
        parts.append(f"<title>{_e(row.tooltip)}</title>")
        parts.append(
            f'<text class="label" x="{_n(left - 8)}" y="{_n(mid + 4)}" '
            f'text-anchor="end">{_e(_short(row.label))}</text>'
        )
        parts.append(
            f'<rect class="track" x="{_n(left)}" y="{_n(bar_top)}" width="{BAR_WIDTH}" '
            f'height="{BAR_HEIGHT}"/>'
        )
        x = left
        for w, css in _widths(row.segments, scale):
            parts.append(
                f'<rect class="bar {_e(css)}" x="{_n(x)}" y="{_n(bar_top)}" '
                f'width="{_n(w)}" height="{BAR_HEIGHT}"/>'
            )
            x += w
        parts.append(
            f'<text class="value" x="{_n(left + BAR_WIDTH + 8)}" y="{_n(mid + 4)}">'
            f"{_e(row.caption)}</text>"
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _widths(segments: Sequence[tuple[float, str]], scale: float) -> list[tuple[float, str]]:
    """Segment widths in pixels; a non-zero segment is at least MIN_SEGMENT wide, so that one
    mismatch in ten thousand still shows (the widest segment gives up what would overflow)."""
    widths = [
        (max(MIN_SEGMENT, BAR_WIDTH * value / scale), css) for value, css in segments if value > 0
    ]
    excess = sum(w for w, _ in widths) - BAR_WIDTH  # only what would overflow the track
    if widths and excess > 0:
        i = max(range(len(widths)), key=lambda k: widths[k][0])
        widths[i] = (widths[i][0] - excess, widths[i][1])
    return widths


def trend_chart(
    chart_id: str, title: str, points: Sequence[TrendPoint], *, min_accuracy: float
) -> str:
    """Accuracy of past checks, oldest to newest, with the ``min_accuracy`` line dashed."""
    width, height = 820, 240
    left, right, top, bottom = 56, 24, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    lowest = min([p.accuracy for p in points] + [min_accuracy], default=min_accuracy)
    lo = max(0.0, math.floor((lowest - 0.5) / 5) * 5)
    lo = min(lo, 95.0)
    span = 100.0 - lo

    def y_of(value: float) -> float:
        return top + plot_h * (100.0 - value) / span

    def x_of(i: int) -> float:
        if len(points) < 2:
            return left + plot_w / 2
        return left + plot_w * i / (len(points) - 1)

    parts = [
        f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    for k in range(5):
        value = lo + span * k / 4
        y = y_of(value)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}"/>'
        )
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{_n(y + 4)}" text-anchor="end">{value:g}%</text>'
        )
    if lo <= min_accuracy <= 100:
        y = y_of(min_accuracy)
        parts.append(
            f'<line class="threshold" x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}"/>'
        )
        parts.append(
            f'<text class="axis threshold-label" x="{left + plot_w}" y="{_n(y - 4)}" '
            f'text-anchor="end">min_accuracy {min_accuracy:g}%</text>'
        )
    if len(points) > 1:
        path = " ".join(f"{_n(x_of(i))},{_n(y_of(p.accuracy))}" for i, p in enumerate(points))
        parts.append(f'<polyline class="trend-line" points="{path}"/>')
    for i, p in enumerate(points):
        status = "pass" if p.passed else "fail"
        when = p.checked_at.strftime("%Y-%m-%d %H:%M UTC")
        parts.append(
            f'<circle class="point {status}" cx="{_n(x_of(i))}" cy="{_n(y_of(p.accuracy))}" r="4">'
            f"<title>{_e(when)}: {p.accuracy:.2f}% ({status}ed)</title></circle>"
        )
    shown = sorted({0, len(points) - 1, (len(points) - 1) // 2}) if points else []
    same_day = bool(points) and points[-1].checked_at - points[0].checked_at < timedelta(days=1)
    time_format = "%H:%M:%S" if same_day else "%b %d %H:%M"
    for i in shown:
        anchor = "start" if i == 0 and len(points) > 1 else "middle"
        if i == len(points) - 1 and len(points) > 1:
            anchor = "end"
        label = points[i].checked_at.strftime(time_format)
        parts.append(
            f'<text class="axis" x="{_n(x_of(i))}" y="{height - bottom + 20}" '
            f'text-anchor="{anchor}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
