"""A self-contained HTML drift report: inline SVG, no scripts, no external files.

Per feature of the latest window: reference-vs-current histogram and the deciding statistic
over time (and the share of records missing it, when the records say); for the model:
the latest window's metrics of its task against the reference (its own metric first),
and verdicts, score drift and its own metric over time. Each feature costs about a
kilobyte, so 500 features stay well under a megabyte.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.core.errors import NotFoundError
from driftloop.monitoring._concept import format_value
from driftloop.monitoring._performance import Performance, metric_label
from driftloop.monitoring._report import DECIDING, DriftReport
from driftloop.monitoring._store import MonitoringStore, histograms

__all__ = ["render_html", "write_html_report"]

_CSS = (
    "body{font:13px system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;"
    "text-align:right}td:first-child,th:first-child{text-align:left}"
    ".d{background:#fde8e8}.v-concept-drift{color:#b00;font-weight:bold}"
    ".v-data-drift{color:#c60;font-weight:bold}.v-no-drift{color:#080}"
    "svg{vertical-align:middle}.r{fill:#9ab}.c{fill:none;stroke:#d33;stroke-width:1.5}"
    ".s{fill:none;stroke:#36c;stroke-width:1.2}"
)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return html.escape(str(x))


def _histogram(ref: Sequence[float], cur: Sequence[float], w: int = 160, h: int = 36) -> str:
    n = max(len(ref), 1)
    top = max([*ref, *cur, 1e-9])
    bw = w / n
    bars = "".join(
        f"M{i * bw:.0f} {h}v-{v / top * h:.0f}h{max(bw - 1, 1):.0f}v{v / top * h:.0f}z"
        for i, v in enumerate(ref)
        if v > 0
    )
    line = " ".join(f"{(i + 0.5) * bw:.0f},{h - v / top * h:.0f}" for i, v in enumerate(cur))
    return (
        f'<svg width="{w}" height="{h}"><path class="r" d="{bars}"/>'
        f'<polyline class="c" points="{line}"/></svg>'
    )


def _sparkline(values: Sequence[float], w: int = 120, h: int = 30) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    step = w / (len(values) - 1)
    points = " ".join(
        f"{i * step:.0f},{h - 2 - (v - lo) / span * (h - 4):.0f}"
        for i, v in enumerate(values)
        if math.isfinite(v)
    )
    return f'<svg width="{w}" height="{h}"><polyline class="s" points="{points}"/></svg>'


def render_html(title: str, windows: Sequence[dict[str, Any]], series: pd.DataFrame) -> str:
    """The page for ``windows`` (oldest first; each with ``summary`` and ``histograms``
    JSON, as the monitoring store keeps them) and a long ``series`` of results."""
    if not windows:
        raise NotFoundError(f"No monitoring windows for {title!r} yet.")
    latest = windows[-1]
    summary = json.loads(latest["summary"])
    hists = json.loads(latest["histograms"])
    parts = [
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style><h1>Drift report: {html.escape(title)}</h1>",
        f"<p>Latest window {_fmt(summary['start'])} to {_fmt(summary['end'])}, version "
        f"{summary['version']}, route {_fmt(summary['route'])}, {summary['rows']:,} rows: "
        f'<span class="v-{summary["verdict"]}">{summary["verdict"]}</span>. '
        f"{html.escape('; '.join(summary['reasons']))}</p>",
        _performance_table(summary),
        _timeline(windows),
        _feature_table(summary, hists, series),
    ]
    return "".join(parts)


def _performance(data: dict[str, Any] | None) -> Performance | None:
    return Performance.from_dict(data) if data else None


def _performance_table(summary: dict[str, Any]) -> str:
    """The latest window's metrics of the model's task beside the reference's."""
    current = _performance(summary.get("performance"))
    if current is None:
        return "<p>Realized performance: no labelled records yet.</p>"
    base = _performance(summary.get("baseline"))
    metric = summary.get("metric") or "roc_auc"
    dropped = {c["metric"] for c in summary.get("checks", []) if c.get("dropped")}
    rows = "".join(
        f"<tr{' class=d' if name in dropped else ''}><td>{html.escape(metric_label(name))}</td>"
        f"<td>{format_value(current.get(name))}</td>"
        f"<td>{format_value(base.get(name) if base else math.nan)}</td></tr>"
        for name in current.display(metric)
    )
    note = f" ({html.escape(current.note)})" if current.note else ""
    return (
        f"<h2>Performance ({html.escape(current.task)}, {current.labelled:,} labelled)</h2>"
        f"<table><tr><th>metric</th><th>realized</th><th>reference</th></tr>{rows}</table>"
        f"<p>{note}</p>"
    )


def _timeline(windows: Sequence[dict[str, Any]]) -> str:
    shown = windows[-60:]
    summaries = [json.loads(w["summary"]) for w in shown]
    psi = [s["prediction_psi"] if s["prediction_psi"] is not None else math.nan for s in summaries]
    metrics = [s.get("metric") or "roc_auc" for s in summaries]
    values = []
    for s, metric in zip(summaries, metrics, strict=True):
        performance = _performance(s["performance"])
        values.append(performance.get(metric) if performance is not None else math.nan)
    names = {metric_label(m) for m in metrics}
    title = html.escape(names.pop() if len(names) == 1 else "model's metric")
    rows = "".join(
        f"<tr><td>{_fmt(s['end'])}</td><td>{s['version']}</td><td>{_fmt(s['route'])}</td>"
        f"<td>{s['rows']:,}</td><td>{_fmt(s['prediction_psi'])}</td>"
        f"<td>{_fmt(value)}</td>"
        f"<td class='v-{s['verdict']}'>{s['verdict']}</td></tr>"
        for s, value in zip(summaries, values, strict=True)
    )
    return (
        f"<h2>Over time</h2><p>score PSI {_sparkline(psi, 300, 40)} &nbsp; realized {title} "
        f"{_sparkline(values, 300, 40)}</p><details><summary>{len(shown)} windows</summary>"
        "<table><tr><th>window end</th><th>version</th><th>route</th><th>rows</th>"
        f"<th>score PSI</th><th>{title}</th><th>verdict</th></tr>{rows}</table></details>"
    )


def _feature_table(
    summary: dict[str, Any], hists: dict[str, dict[str, list[float]]], series: pd.DataFrame
) -> str:
    drifted = set(summary["drifted_features"])
    latest = series[series["window_end"] == series["window_end"].max()] if len(series) else series
    values = {
        (f, s): v
        for f, s, v in zip(
            latest.get("feature", []),
            latest.get("statistic", []),
            latest.get("value", []),
            strict=True,
        )
    }
    trend: dict[str, list[float]] = {}
    deciding = set(DECIDING.values())
    for f, s, v in zip(
        series.get("feature", []), series.get("statistic", []), series.get("value", []), strict=True
    ):
        if s in deciding:
            trend.setdefault(f, []).append(math.nan if v is None else float(v))
    names = sorted(hists, key=lambda f: (f not in drifted, -_num(values.get((f, "psi"))), f))
    missing: dict[str, float] = summary.get("missing_rates") or {}
    rows = "".join(
        f"<tr{' class=d' if f in drifted else ''}><td>{html.escape(f)}</td>"
        + (f"<td>{missing.get(f, 0.0):.0%}</td>" if missing else "")
        + f"<td>{_fmt(values.get((f, 'psi')))}</td><td>{_fmt(values.get((f, 'ks')))}</td>"
        f"<td>{_fmt(values.get((f, 'jensen_shannon')))}</td>"
        f"<td>{_fmt(values.get((f, 'wasserstein')))}</td>"
        f"<td>{_fmt(values.get((f, 'chi_square')))}</td>"
        f"<td>{_histogram(hists[f]['reference'], hists[f]['current'])}</td>"
        f"<td>{_sparkline(trend.get(f, []))}</td></tr>"
        for f in names
    )
    return (
        f"<h2>Features ({len(drifted)} drifted of {len(hists)})</h2>"
        "<p>Histograms over the reference's quantile bins (plus one below its minimum and "
        "one above its maximum): the reference as bars (equal shares by construction), "
        "the current window as the red line. "
        "Trend: PSI (JS for categories) per window.</p>"
        "<table><tr><th>feature</th>"
        + ("<th>missing</th>" if missing else "")
        + "<th>PSI</th><th>KS</th><th>JS</th><th>Wasserstein</th>"
        f"<th>chi²</th><th>reference vs current</th><th>trend</th></tr>{rows}</table>"
    )


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else -1.0


def write_html_report(
    out: str | Path,
    *,
    store: MonitoringStore | None = None,
    model: str | None = None,
    reports: Sequence[DriftReport] = (),
) -> Path:
    """Write the page for ``model`` from ``store``, or for ``reports`` given directly
    (for example the one :func:`drift_report` returned). Returns the path."""
    if store is not None and model is not None:
        windows = store.window_rows(model)
        series = store.series(model)
        title = model
    else:
        windows = [
            {"summary": json.dumps(r.summary()), "histograms": json.dumps(histograms(r))}
            for r in reports
        ]
        series = pd.concat([_series_of(r, i) for i, r in enumerate(reports)] or [pd.DataFrame()])
        title = reports[-1].model if reports and reports[-1].model else "reference vs current"
    path = Path(out)
    path.write_text(render_html(title, windows, series), encoding="utf-8")
    return path


def _series_of(report: DriftReport, index: int) -> pd.DataFrame:
    frames = [t.to_frame() for t in (report.features, report.prediction) if t is not None]
    long = pd.concat(frames).dropna(subset=["statistic"])
    return long.assign(window_end=index)[["window_end", "feature", "statistic", "value"]]
