"""Small inline SVG charts for the demo's report (no script, no CDN): lines over days,
stacked bars per day, and markers for events; every number drawn is given by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bars", "lines"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 260, 60, 150, 20, 40

Point = tuple[float, float]


def _frame(
    x_max: float, y_min: float, y_max: float, y_label: str, events: Sequence[tuple[float, str]]
) -> tuple[list[str], float, float]:
    """Axes, ticks and event lines; the plot's x and y scales."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    sx = plot_w / max(x_max, 1.0)
    span = (y_max - y_min) or 1.0
    sy = plot_h / span
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for day in range(0, int(x_max) + 1, max(1, round(x_max / 12))):
        x = LEFT + day * sx
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{day}</text>'
        )
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">day</text>')
    for i in range(5):
        value = y_min + span * i / 4
        y = TOP + plot_h - (value - y_min) * sy
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(value)}</text>'
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
    out.append(
        f'<text x="14" y="{TOP + plot_h / 2}" transform="rotate(-90 14 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for when, label in events:
        x = LEFT + when * sx
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#999" '
            f'stroke-dasharray="4 3"><title>{escape(label)}</title></line>'
        )
    return out, sx, sy


def _tick(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 14 + 16 * i
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{y - 9}" width="10" height="10" '
            f'fill="{color}"/><text x="{WIDTH - RIGHT + 24}" y="{y}">{escape(name)}</text>'
        )
    return out


def lines(
    series: Mapping[str, Sequence[Point]],
    *,
    x_max: float,
    y_label: str,
    events: Sequence[tuple[float, str]] = (),
) -> str:
    """One line (with dots) per series of (day, value) points; NaN values are gaps."""
    values = [y for points in series.values() for _, y in points if math.isfinite(y)]
    y_min, y_max = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (y_max - y_min) * 0.05 or 0.05
    y_min, y_max = y_min - pad, y_max + pad
    out, sx, sy = _frame(x_max, y_min, y_max, y_label, events)
    base = HEIGHT - BOTTOM
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        run: list[str] = []
        for x, y in [*points, (math.nan, math.nan)]:
            if not math.isfinite(y):
                if len(run) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                        f'points="{" ".join(run)}"/>'
                    )
                run = []
                continue
            px, py = LEFT + x * sx, base - (y - y_min) * sy
            run.append(f"{px:.1f},{py:.1f}")
            out.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.2" fill="{color}">'
                f"<title>{escape(name)} day {x:g}: {y:.4g}</title></circle>"
            )
    out.extend(_legend(list(series)))
    out.append("</svg>")
    return "\n".join(out)


def bars(
    stacks: Mapping[str, Mapping[int, float]],
    *,
    x_max: float,
    y_label: str,
    events: Sequence[tuple[float, str]] = (),
) -> str:
    """Stacked bars per day: ``stacks[name][day]`` is that part's height on that day."""
    days = sorted({d for parts in stacks.values() for d in parts})
    totals = [sum(parts.get(d, 0.0) for parts in stacks.values()) for d in days]
    out, sx, sy = _frame(x_max, 0.0, max(totals, default=1.0) or 1.0, y_label, events)
    base = HEIGHT - BOTTOM
    width = max(sx * 0.8, 1.0)
    for day in days:
        height_so_far = 0.0
        for i, (name, parts) in enumerate(stacks.items()):
            value = parts.get(day, 0.0)
            if value <= 0:
                continue
            h = value * sy
            y = base - height_so_far - h
            out.append(
                f'<rect x="{LEFT + day * sx:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{escape(name)} day {day}: {value:,.0f}</title></rect>"
            )
            height_so_far += h
    out.extend(_legend(list(stacks)))
    out.append("</svg>")
    return "\n".join(out)
