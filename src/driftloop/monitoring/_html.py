"""A self-contained HTML drift report: inline SVG, no scripts, no external files.

The headline is the most recent window with enough records to judge (newer windows too
small to judge are named under it). Per feature of that window: reference-vs-current
histogram and the deciding statistic over time (and the share of records missing it, when
the records say); for the model: the window's metrics of its task against the reference
(its own metric first) and, for a binary model, the metrics estimated from its scores before
labels (CBPE) beside the realized ones, and every window's verdict, score drift, own metric
and estimated ROC AUC over time.
Each feature costs about a kilobyte, so 500 features stay well under a megabyte.
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
from driftloop.monitoring._estimated import ESTIMATED
from driftloop.monitoring._performance import Performance, metric_label
from driftloop.monitoring._report import DriftReport
from driftloop.monitoring._store import MonitoringStore, histograms
from driftloop.monitoring._verdict import DECIDING

__all__ = ["render_html", "write_html_report"]

_CSS = (
    "body{font:13px system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;"
    "text-align:right}td:first-child,th:first-child{text-align:left}"
    ".d{background:#fde8e8}.v-concept-drift{color:#b00;font-weight:bold}"
    ".v-estimated-drop{color:#a0a;font-weight:bold}.q-estimated-drop{fill:#b5b}"
    ".v-data-drift{color:#c60;font-weight:bold}.v-no-drift{color:#080}"
    "svg{vertical-align:middle}.r{fill:#9ab}.c{fill:none;stroke:#d33;stroke-width:1.5}"
    ".s{fill:none;stroke:#36c;stroke-width:1.2}.p{fill:#36c}"
    ".q-no-drift{fill:#8c8}.q-data-drift{fill:#e93}.q-concept-drift{fill:#d33}"
    ".q-insufficient-data{fill:#ccc}"
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
    """A line through the finite values, one slot per value (NaN leaves a gap); a dot when
    only one is finite."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    step = w / max(len(values) - 1, 1)
    points = [
        (i * step if len(values) > 1 else w / 2, h - 2 - (v - lo) / span * (h - 4))
        for i, v in enumerate(values)
        if math.isfinite(v)
    ]
    if len(points) == 1:
        mark = f'<circle class="p" cx="{points[0][0]:.0f}" cy="{points[0][1]:.0f}" r="2.5"/>'
    else:
        line = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
        mark = f'<polyline class="s" points="{line}"/>'
    return f'<svg width="{w}" height="{h}">{mark}</svg>'


def _verdict_strip(verdicts: Sequence[str], w: int = 300, h: int = 12) -> str:
    """One square per window, coloured by its verdict (grey: too few records to judge)."""
    bw = w / max(len(verdicts), 1)
    cells = "".join(
        f'<rect class="q-{v}" x="{i * bw:.1f}" width="{max(bw - 1, 1):.1f}" height="{h}">'
        f"<title>{v}</title></rect>"
        for i, v in enumerate(verdicts)
    )
    return f'<svg width="{w}" height="{h}">{cells}</svg>'


def _time(iso: str) -> str:
    ts = pd.Timestamp(iso)
    return f"{ts.tz_localize('UTC') if ts.tzinfo is None else ts.tz_convert('UTC'):%Y-%m-%d %H:%M}"


def _where(summary: dict[str, Any]) -> str:
    """Window, version, route and rows: only what the summary knows (a comparison of two
    frames has no window, version or route)."""
    parts = []
    if summary.get("start") and summary.get("end"):
        parts.append(f"Window {_time(summary['start'])} to {_time(summary['end'])} UTC")
    if summary.get("version"):
        parts.append(f"version {summary['version']}")
    if summary.get("route"):
        parts.append(f"route {html.escape(str(summary['route']))}")
    parts.append(f"{summary['rows']:,} rows")
    return ", ".join(parts)


def render_html(title: str, windows: Sequence[dict[str, Any]], series: pd.DataFrame) -> str:
    """The page for ``windows`` (oldest first; each with ``id``, ``summary`` and
    ``histograms`` JSON, as the monitoring store keeps them) and a long ``series`` of
    results (with ``window_id``). The headline is the most recent window with enough
    records to judge; the over-time charts and table show every window."""
    if not windows:
        raise NotFoundError(f"No monitoring windows for {title!r} yet.")
    summaries = [json.loads(w["summary"]) for w in windows]
    judged = [i for i, s in enumerate(summaries) if s["verdict"] != "insufficient-data"]
    shown = judged[-1] if judged else len(windows) - 1
    summary = summaries[shown]
    ids = series["window_id"] if "window_id" in series.columns else pd.Series(dtype=object)
    parts = [
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style><h1>Drift report: {html.escape(title)}</h1>",
        f"<p>{_where(summary)}: "
        f'<span class="v-{summary["verdict"]}">{summary["verdict"]}</span>. '
        f"{html.escape('; '.join(summary['reasons']))}</p>",
        _newer(summaries[shown + 1 :]),
        _performance_table(summary),
        _timeline(summaries),
        _feature_table(
            summary,
            json.loads(windows[shown]["histograms"]),
            series[ids == windows[shown].get("id")],
            series,
        ),
    ]
    return "".join(parts)


def _newer(summaries: Sequence[dict[str, Any]]) -> str:
    """The windows after the headline: all too small to judge."""
    if not summaries:
        return ""
    return (
        f"<p>Newer: {len(summaries)} window(s) with too few records to judge (the latest: "
        f"{_where(summaries[-1])}); see <i>Over time</i>.</p>"
    )


def _performance(data: dict[str, Any] | None) -> Performance | None:
    return Performance.from_dict(data) if data else None


def _performance_table(summary: dict[str, Any]) -> str:
    """The latest window's metrics of the model's task beside the reference's, with the
    estimated ones (CBPE) beside them, or why there are none."""
    current = _performance(summary.get("performance"))
    estimated = _performance(summary.get("estimated"))
    why = summary.get("estimation_note") or ""
    if current is None and estimated is None:
        said = f" {html.escape(why)}." if why else ""
        return f"<p>Realized performance: no labelled records yet.{said}</p>"
    base = _performance(summary.get("baseline"))
    metric = summary.get("metric") or "roc_auc"
    dropped = {
        c["metric"]
        for c in (*summary.get("checks", []), *summary.get("estimated_checks", []))
        if c.get("dropped")
    }
    names = current.display(metric) if current is not None else []
    if estimated is not None:
        names += [n for n in ESTIMATED if n not in names and math.isfinite(estimated.get(n))]
    rows = "".join(
        f"<tr{' class=d' if _key(name, current or estimated) in dropped else ''}>"
        f"<td>{html.escape(metric_label(name))}</td>"
        f"<td>{format_value(current.get(name) if current else math.nan)}</td>"
        f"<td>{format_value(estimated.get(name) if estimated else math.nan)}</td>"
        f"<td>{format_value(base.get(name) if base else math.nan)}</td></tr>"
        for name in names
    )
    notes = [p.note for p in (current, estimated) if p is not None and p.note]
    if estimated is None and why:
        notes.append(why)
    if summary.get("thresholds") == "learned":
        notes.append("judged against bands learned from the reference period")
    labelled = f"{current.labelled:,} labelled" if current is not None else "no labels yet"
    task = (current or estimated).task  # type: ignore[union-attr]
    return (
        f"<h2>Performance ({html.escape(task)}, {labelled})</h2>"
        "<table><tr><th>metric</th><th>realized</th><th>estimated</th><th>reference</th></tr>"
        f"{rows}</table><p>{html.escape('; '.join(notes))}</p>"
    )


def _key(name: str, performance: Performance | None) -> str:
    """The name a check gives a metric (recall and precision at the threshold)."""
    if name in ("recall", "precision") and performance is not None:
        return f"{name}_at_{performance.threshold:g}"
    return name


def _timeline(summaries: Sequence[dict[str, Any]]) -> str:
    """Every window, oldest first: verdicts, score PSI and the model's metric as charts
    (one slot per window) and as a table."""
    psi = [s["prediction_psi"] if s["prediction_psi"] is not None else math.nan for s in summaries]
    metrics = [s.get("metric") or "roc_auc" for s in summaries]
    values, estimates = [], []
    for s, metric in zip(summaries, metrics, strict=True):
        performance = _performance(s["performance"])
        values.append(performance.get(metric) if performance is not None else math.nan)
        estimated = _performance(s.get("estimated"))
        estimates.append(estimated.roc_auc if estimated is not None else math.nan)
    shown = any(math.isfinite(v) for v in estimates)
    names = {metric_label(m) for m in metrics}
    title = html.escape(names.pop() if len(names) == 1 else "model's metric")
    rows = "".join(
        f"<tr><td>{_time(s['end']) if s.get('end') else '-'}</td><td>{s['version']}</td>"
        f"<td>{_fmt(s['route'])}</td><td>{s['rows']:,}</td><td>{_fmt(s['prediction_psi'])}</td>"
        f"<td>{_fmt(value)}</td>"
        + (f"<td>{_fmt(estimate)}</td>" if shown else "")
        + f"<td class='v-{s['verdict']}'>{s['verdict']}</td></tr>"
        for s, value, estimate in zip(summaries, values, estimates, strict=True)
    )
    estimated_chart = f" &nbsp; estimated ROC AUC {_sparkline(estimates, 300, 40)}" if shown else ""
    return (
        f"<h2>Over time ({len(summaries)} window{'s' if len(summaries) != 1 else ''})</h2>"
        f"<p>verdicts {_verdict_strip([s['verdict'] for s in summaries])}</p>"
        f"<p>score PSI {_sparkline(psi, 300, 40)} &nbsp; realized {title} "
        f"{_sparkline(values, 300, 40)}{estimated_chart}</p>"
        "<table><tr><th>window end</th><th>version</th><th>route</th><th>rows</th>"
        f"<th>score PSI</th><th>{title}</th>"
        + ("<th>estimated ROC AUC</th>" if shown else "")
        + f"<th>verdict</th></tr>{rows}</table>"
    )


def _feature_table(
    summary: dict[str, Any],
    hists: dict[str, dict[str, list[float]]],
    latest: pd.DataFrame,
    series: pd.DataFrame,
) -> str:
    """The headline window's statistics per feature (``latest``, its rows of the series),
    with each feature's trend over every window of ``series``."""
    drifted = set(summary["drifted_features"])
    values = {
        (f, s): v
        for f, s, v in zip(
            latest.get("feature", []),
            latest.get("statistic", []),
            latest.get("value", []),
            strict=True,
        )
    }
    # The trend is the feature's deciding statistic (only categories have chi-square).
    categorical = set(series["feature"][series["statistic"] == "chi_square"]) if len(series) else ()
    trend: dict[str, list[float]] = {}
    for f, s, v in zip(
        series.get("feature", []), series.get("statistic", []), series.get("value", []), strict=True
    ):
        if s == DECIDING["categorical" if f in categorical else "numeric"]:
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
            {"id": i, "summary": json.dumps(r.summary()), "histograms": json.dumps(histograms(r))}
            for i, r in enumerate(reports)
        ]
        series = pd.concat([_series_of(r, i) for i, r in enumerate(reports)] or [pd.DataFrame()])
        title = reports[-1].model if reports and reports[-1].model else "reference vs current"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(title, windows, series), encoding="utf-8")
    return path


def _series_of(report: DriftReport, index: int) -> pd.DataFrame:
    frames = [t.to_frame() for t in (report.features, report.prediction) if t is not None]
    long = pd.concat(frames).dropna(subset=["statistic"])
    long = long.assign(window_id=index, window_end=index)
    return long[["window_id", "window_end", "feature", "statistic", "value"]]
