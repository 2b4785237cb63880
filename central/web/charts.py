"""Horizontal bar charts as inline SVG (no scripts, no external assets) for the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["Series", "bar_chart"]

WIDTH = 560
LABEL_WIDTH = 120
VALUE_WIDTH = 70
BAR = 22
GAP = 12
LEGEND = 30


@dataclass(frozen=True)
class Series:
    """One coloured set of bars: its name (the legend), colour and one value per label."""

    name: str
    colour: str
    values: Sequence[float | None]


def _number(value: float, unit: str) -> str:
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return text + unit


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    unit: str = "",
    maximum: float | None = None,
) -> Markup:
    """A horizontal bar chart: one row per label, the series side by side or ``stacked``."""
    per_row = BAR if stacked else BAR * len(series)
    height = LEGEND + len(labels) * (per_row + GAP) + 4
    totals = [
        sum(s.values[i] or 0 for s in series)
        if stacked
        else max((s.values[i] or 0 for s in series), default=0)
        for i in range(len(labels))
    ]
    top = maximum if maximum is not None else max(totals, default=0)
    scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / top if top > 0 else 0.0
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="15"><title>{escape(title)}</title>'
    ]
    x: float = LABEL_WIDTH
    for s in series:
        parts.append(
            f'<rect x="{x}" y="6" width="14" height="14" fill="{escape(s.colour)}"/>'
            f'<text x="{x + 18}" y="18">{escape(s.name)}</text>'
        )
        x += 30 + 15 * len(s.name)
    for i, label in enumerate(labels):
        y = LEGEND + i * (per_row + GAP)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + per_row / 2 + 5}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        x = float(LABEL_WIDTH)
        for n, s in enumerate(series):
            value = s.values[i]
            bar_y = y if stacked else y + n * BAR
            length = (value or 0) * scale
            shown = escape(f"{s.name} {label}: " + ("—" if value is None else _number(value, unit)))
            parts.append(
                f'<rect x="{x:.1f}" y="{bar_y}" width="{length:.1f}" height="{BAR - 2}" '
                f'fill="{escape(s.colour)}"><title>{shown}</title></rect>'
            )
            if not stacked:
                end = "—" if value is None else _number(value, unit)
                parts.append(f'<text x="{x + length + 6:.1f}" y="{bar_y + BAR - 6}">{end}</text>')
            else:
                x += length
        if stacked:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{y + BAR - 6}">{_number(totals[i], unit)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
