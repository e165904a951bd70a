"""Charts drawn as inline SVG on the server: no script, no external file, readable as text.

Every chart carries a ``<title>`` and ``aria-label`` naming what it shows, and its data
points carry ``<title>`` tooltips, so a screen reader and a test read the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import quote

from markupsafe import Markup

__all__ = [
    "Event",
    "Segment",
    "bars",
    "counts",
    "events",
    "histogram",
    "line_chart",
    "timeline",
]

_PALETTE = ("#36c", "#d33", "#2a2", "#e93", "#83c", "#0aa", "#a63", "#666")


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.3g}"
    return f"{x:.2e}"


def _open(label: str, w: int, h: int, css: str = "chart") -> str:
    text = escape(label)
    return (
        f'<svg class="{css}" role="img" aria-label="{text}" viewBox="0 0 {w} {h}" '
        f'width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{text}</title>'
    )


def line_chart(
    label: str,
    series: Mapping[str, Sequence[tuple[datetime, float | None]]],
    *,
    threshold: float | None = None,
    marked: Sequence[datetime] = (),
    w: int = 520,
    h: int = 150,
) -> Markup:
    """Lines of values over time (one per series name), a dashed ``threshold`` line and a
    red dot on each point whose value passes it; ``marked`` times get a vertical rule."""
    points = [(t, v) for s in series.values() for t, v in s if v is not None and math.isfinite(v)]
    if not points:
        return Markup(f'<p class="empty">{escape(label)}: no values yet.</p>')
    pad_l, pad_r, pad_t, pad_b = 48, 8, 8, 20
    times = [t.timestamp() for t, _ in points]
    t0, t1 = min(times), max(times)
    values = [v for _, v in points if v is not None] + (
        [threshold] if threshold is not None else []
    )
    lo, hi = min(0.0, *values), max(values)
    hi = hi if hi > lo else lo + 1.0

    def x(t: datetime) -> float:
        span = t1 - t0 or 1.0
        return pad_l + (t.timestamp() - t0) / span * (w - pad_l - pad_r)

    def y(v: float) -> float:
        return pad_t + (1 - (v - lo) / (hi - lo)) * (h - pad_t - pad_b)

    base = h - pad_b
    out = [_open(label, w, h)]
    out.append(f'<line class="axis" x1="{pad_l}" y1="{base}" x2="{w - pad_r}" y2="{base}"/>')
    out.extend(
        f'<text class="tick" x="{pad_l - 4}" y="{_n(y(v) + 4)}" text-anchor="end">{_fmt(v)}</text>'
        for v in (lo, hi)
    )
    out.extend(
        f'<text class="tick" x="{_n(x(t))}" y="{h - 6}" text-anchor="{a}">{t:%m-%d %H:%M}</text>'
        for t, a in ((min(points)[0], "start"), (max(points)[0], "end"))
    )
    out.extend(
        f'<line class="mark" x1="{_n(x(t))}" y1="{pad_t}" x2="{_n(x(t))}" y2="{base}"/>'
        for t in marked
    )
    if threshold is not None:
        out.append(
            f'<line class="threshold" x1="{pad_l}" y1="{_n(y(threshold))}" x2="{w - pad_r}" '
            f'y2="{_n(y(threshold))}"><title>threshold {_fmt(threshold)}</title></line>'
        )
    for i, (name, values_of) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        kept = [(t, v) for t, v in values_of if v is not None and math.isfinite(v)]
        path = " ".join(f"{_n(x(t))},{_n(y(v))}" for t, v in kept)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        for t, v in kept:
            over = threshold is not None and v > threshold
            out.append(
                f'<circle class="{"over" if over else "pt"}" cx="{_n(x(t))}" cy="{_n(y(v))}" '
                f'r="{3 if over else 2}" fill="{color}"><title>{escape(name)} {t:%Y-%m-%d %H:%M}: '
                f"{_fmt(v)}{' (over threshold)' if over else ''}</title></circle>"
            )
    out.append("</svg>")
    return Markup("".join(out))


def histogram(
    label: str, reference: Sequence[float], current: Sequence[float], w: int = 260, h: int = 90
) -> Markup:
    """Reference proportions per bin as grey bars, the window's as a red outline."""
    n = max(len(reference), len(current), 1)
    top = max([*reference, *current, 1e-9])
    bw = (w - 4) / n
    out = [_open(label, w, h, "chart hist")]
    for i, v in enumerate(reference):
        bh = v / top * (h - 4)
        out.append(
            f'<rect class="ref" x="{_n(2 + i * bw)}" y="{_n(h - bh)}" width="{_n(max(bw - 1, 1))}" '
            f'height="{_n(bh)}"><title>bin {i + 1}: reference {v:.1%}</title></rect>'
        )
    for i, v in enumerate(current):
        bh = v / top * (h - 4)
        out.append(
            f'<rect class="cur" x="{_n(2 + i * bw)}" y="{_n(h - bh)}" width="{_n(max(bw - 1, 1))}" '
            f'height="{_n(bh)}"><title>bin {i + 1}: window {v:.1%}</title></rect>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def bars(label: str, values: Mapping[str, float], w: int = 460, row: int = 18) -> Markup:
    """Horizontal bars around zero, largest magnitude first: positive ones red (pushing the
    score up), negative ones blue; each bar names its feature and value."""
    items = sorted(values.items(), key=lambda kv: -abs(kv[1]))
    if not items:
        return Markup(f'<p class="empty">{escape(label)}: none.</p>')
    top = max(abs(v) for _, v in items) or 1.0
    name_w, mid = 140, 140 + (w - 140) / 2
    half = (w - name_w) / 2 - 40
    h = row * len(items) + 4
    out = [_open(label, w, h, "chart bars")]
    out.append(f'<line class="axis" x1="{_n(mid)}" y1="0" x2="{_n(mid)}" y2="{h}"/>')
    for i, (name, v) in enumerate(items):
        y, bw = 2 + i * row, abs(v) / top * half
        x = mid if v >= 0 else mid - bw
        out.append(
            f'<text class="tick" x="{name_w - 6}" y="{y + row - 6}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect class="{"pos" if v >= 0 else "neg"}" x="{_n(x)}" y="{y + 2}" '
            f'width="{_n(max(bw, 1))}" height="{row - 5}"><title>{escape(name)}: {v:+.4g}</title>'
            f'</rect><text class="tick" x="{_n(mid + bw + 4 if v >= 0 else mid - bw - 4)}" '
            f'y="{y + row - 6}" text-anchor="{"start" if v >= 0 else "end"}">{v:+.3g}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def counts(label: str, values: Mapping[str, int], w: int = 360, row: int = 16) -> Markup:
    """Horizontal bars of counts, in the order given (bins), each with its count."""
    if not values:
        return Markup(f'<p class="empty">{escape(label)}: none.</p>')
    top = max(values.values()) or 1
    name_w, room = 80, w - 80 - 50
    h = row * len(values) + 4
    out = [_open(label, w, h, "chart counts")]
    for i, (name, n) in enumerate(values.items()):
        y, bw = 2 + i * row, n / top * room
        out.append(
            f'<text class="tick" x="{name_w - 6}" y="{y + row - 5}" text-anchor="end">'
            f'{escape(name)}</text><rect class="ref" x="{name_w}" y="{y + 2}" '
            f'width="{_n(max(bw, 1))}" height="{row - 4}"><title>{escape(name)}: {n}</title>'
            f'</rect><text class="tick" x="{_n(name_w + bw + 4)}" y="{y + row - 5}">{n}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Segment:
    """An alias holding ``version`` from ``start`` until ``end`` (None: still holds it)."""

    alias: str
    version: int
    start: datetime
    end: datetime | None
    who: str


def timeline(label: str, segments: Sequence[Segment], now: datetime, w: int = 720) -> Markup:
    """One lane per alias, one bar per holder: what served when. A click on a bar asks the
    page for every alias's holder at that bar's start (``?at=``)."""
    if not segments:
        return Markup(f'<p class="empty">{escape(label)}: no alias has been set.</p>')
    lanes = list(dict.fromkeys(s.alias for s in segments))
    t0 = min(s.start for s in segments).timestamp()
    t1 = max(now.timestamp(), t0 + 1)
    pad_l, lane_h = 90, 24
    h = lane_h * len(lanes) + 22

    def x(t: datetime) -> float:
        return pad_l + (t.timestamp() - t0) / (t1 - t0) * (w - pad_l - 8)

    versions = sorted({s.version for s in segments})
    out = [_open(label, w, h, "chart timeline")]
    for i, alias in enumerate(lanes):
        out.append(
            f'<text class="tick" x="{pad_l - 6}" y="{i * lane_h + 16}" text-anchor="end">'
            f"{escape(alias)}</text>"
        )
    for s in segments:
        i = lanes.index(s.alias)
        x0, x1 = x(s.start), x(s.end or now)
        color = _PALETTE[versions.index(s.version) % len(_PALETTE)]
        until = f"{s.end:%Y-%m-%d %H:%M:%S}" if s.end else "now"
        at = quote(f"{s.start:%Y-%m-%dT%H:%M:%S.%f}")
        out.append(
            f'<a href="?at={at}#history"><rect x="{_n(x0)}" y="{i * lane_h + 3}" '
            f'width="{_n(max(x1 - x0, 2))}" height="{lane_h - 6}" fill="{color}"><title>'
            f"{escape(s.alias)} = version {s.version} from {s.start:%Y-%m-%d %H:%M:%S} until "
            f"{until} (set by {escape(s.who)})</title></rect>"
        )
        if x1 - x0 > 18:
            out.append(
                f'<text class="label" x="{_n(x0 + 4)}" y="{i * lane_h + 16}">v{s.version}</text>'
            )
        out.append("</a>")
    start = datetime.fromtimestamp(t0, now.tzinfo)
    out.append(f'<text class="tick" x="{pad_l}" y="{h - 4}">{start:%Y-%m-%d %H:%M}</text>')
    out.append(f'<text class="tick" x="{w - 8}" y="{h - 4}" text-anchor="end">now</text>')
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Event:
    """Something that happened at ``at`` in ``lane``, of ``kind`` (its colour), described
    by ``text``."""

    at: datetime
    lane: str
    kind: str
    text: str


def events(
    label: str, happened: Sequence[Event], *, lanes: Sequence[str], now: datetime, w: int = 720
) -> Markup:
    """One lane per name of ``lanes`` (in that order), a dot per event: what happened when."""
    if not happened:
        return Markup(f'<p class="empty">{escape(label)}: nothing yet.</p>')
    t0 = min(e.at for e in happened).timestamp()
    t1 = max(now.timestamp(), max(e.at for e in happened).timestamp(), t0 + 1)
    pad_l, lane_h = 90, 20
    h = lane_h * len(lanes) + 22
    kinds = sorted({e.kind for e in happened})

    def x(t: datetime) -> float:
        return pad_l + (t.timestamp() - t0) / (t1 - t0) * (w - pad_l - 12)

    out = [_open(label, w, h, "chart events")]
    for i, lane in enumerate(lanes):
        y = i * lane_h + lane_h / 2
        out.append(
            f'<text class="tick" x="{pad_l - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f'{escape(lane)}</text><line class="mark" x1="{pad_l}" y1="{_n(y)}" '
            f'x2="{w - 8}" y2="{_n(y)}"/>'
        )
    for e in happened:
        i = lanes.index(e.lane) if e.lane in lanes else len(lanes) - 1
        color = _PALETTE[kinds.index(e.kind) % len(_PALETTE)]
        out.append(
            f'<circle cx="{_n(x(e.at))}" cy="{_n(i * lane_h + lane_h / 2)}" r="4" '
            f'fill="{color}"><title>{e.at:%Y-%m-%d %H:%M:%S} {escape(e.lane)}: '
            f"{escape(e.text)}</title></circle>"
        )
    start = datetime.fromtimestamp(t0, now.tzinfo)
    out.append(f'<text class="tick" x="{pad_l}" y="{h - 4}">{start:%Y-%m-%d %H:%M}</text>')
    out.append(f'<text class="tick" x="{w - 8}" y="{h - 4}" text-anchor="end">now</text>')
    out.append("</svg>")
    return Markup("".join(out))
