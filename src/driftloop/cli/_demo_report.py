"""The demo's HTML report: the loop's decisions on a timeline, drift and realized
performance over time, and traffic per arm per day, drawn as inline SVG (one file, no
script, no CDN). Every number comes from the story's audit log, monitoring windows and
decision log.

Estimated performance (before labels: monitoring's CBPE estimate from the scores, binary
models) is drawn from the stored windows where monitoring made one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from driftloop.cli._demo_story import StoryResult
from driftloop.cli._demo_svg import bars, lines
from driftloop.stats import TASKS, Outputs, evaluate

__all__ = [
    "daily_performance",
    "daily_traffic",
    "drift_by_window",
    "estimated_by_window",
    "write_story_report",
]

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .note { color: #666; font-size: 13px; }
"""


def _day(story_start: pd.Timestamp, ts: pd.Series) -> pd.Series:
    start = story_start.tz_localize("UTC") if story_start.tzinfo is None else story_start
    return ((pd.to_datetime(ts, utc=True) - start) / pd.Timedelta(days=1)).astype(float)


def metric_of(result: StoryResult) -> str:
    return str(TASKS[result.story.task].default_metric)


def daily_performance(result: StoryResult) -> dict[str, list[tuple[float, float]]]:
    """The realized metric per day on the labelled rows each version answered (and, as
    ``vN shadow``, the rows its shadow scored): ``{series: [(day, value), ...]}``."""
    rows = result.audit_rows
    rows = rows.loc[rows["label"].notna()]
    metric = metric_of(result)
    day = np.floor(_day(result.story.start, rows["ts"]))
    shadow = rows["route"].astype(str) == "shadow"
    name: pd.Series = "v" + rows["version"].astype(str) + np.where(shadow, " shadow", "")
    out: dict[str, list[tuple[float, float]]] = {}
    frame = pd.DataFrame({"day": day, "name": name, "score": rows["score"], "y": rows["label"]})
    task = result.story.task
    classes = ("0", "1") if task == "binary" else ()
    for key, part in frame.groupby(["name", "day"], sort=True):
        series, d = cast(tuple[str, float], key)
        if len(part) < 30:
            continue  # a handful of rows says nothing
        outputs = Outputs(task, part["score"].to_numpy(dtype=np.float64), classes)
        value = evaluate(outputs, part["y"].to_numpy(dtype=np.float64)).get(metric, math.nan)
        out.setdefault(str(series), []).append((float(d), float(value)))
    return out


def daily_traffic(result: StoryResult) -> dict[str, dict[int, float]]:
    """Rows per day by arm: each version's answers, and its shadow copies."""
    rows = result.audit_rows
    day = np.floor(_day(result.story.start, rows["ts"])).astype(int)
    shadow = rows["route"].astype(str) == "shadow"
    name: pd.Series = (
        "v" + rows["version"].astype(str) + np.where(shadow, " shadow copies", " answered")
    )
    counts = pd.DataFrame({"day": day, "name": name}).value_counts()
    out: dict[str, dict[int, float]] = {}
    for key, n in counts.items():
        d, series = cast(tuple[int, str], key)
        out.setdefault(str(series), {})[int(d)] = float(n)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def estimated_by_window(result: StoryResult) -> dict[str, list[tuple[float, float]]]:
    """Monitoring's estimate of the metric (from the scores, before labels) per daily
    window of each version's answers, where it made one."""
    metric, out = metric_of(result), dict[str, list[tuple[float, float]]]()
    for w in result.windows:
        if str(w.get("route")) == "shadow":
            continue
        summary = w.get("summary") or {}
        if isinstance(summary, str):
            summary = json.loads(summary)
        estimate = (summary.get("estimated_performance") or {}).get("metrics") or {}
        if metric in estimate:
            start = _day(result.story.start, pd.Series([w["window_start"]])).iloc[0]
            out.setdefault(f"v{w['version']} estimated", []).append(
                (float(start), float(estimate[metric]))
            )
    return out


def drift_by_window(result: StoryResult) -> dict[str, list[tuple[float, float]]]:
    """Drifted features per daily monitoring window of each version's answers."""
    out: dict[str, list[tuple[float, float]]] = {}
    for w in result.windows:
        if str(w.get("route")) == "shadow":
            continue
        summary = w.get("summary") or {}
        if isinstance(summary, str):
            summary = json.loads(summary)
        start = _day(result.story.start, pd.Series([w["window_start"]])).iloc[0]
        drifted = len(summary.get("drifted_features") or ())
        out.setdefault(f"v{w['version']}", []).append((float(start), float(drifted)))
    return out


def _events(result: StoryResult) -> list[tuple[float, str]]:
    days = _day(result.story.start, pd.Series([d.at for d in result.decisions]))
    return [
        (float(day), f"{d.action} v{d.to_version}: {d.rule}")
        for day, d in zip(days, result.decisions, strict=True)
        if d.action in ("retrain", "shadow", "canary", "promote", "rollback", "reject")
    ]


def _decision_table(result: StoryResult) -> str:
    days = _day(result.story.start, pd.Series([d.at for d in result.decisions]))
    head = "<tr><th>day</th><th>action</th><th>state</th><th>step</th><th>from</th>"
    head += "<th>to</th><th>rule</th><th>numbers</th></tr>"
    body = []
    for day, d in zip(days, result.decisions, strict=True):
        numbers = escape(json.dumps(_short(d.numbers), default=str)[:400])
        body.append(
            f"<tr><td>{day:.2f}</td><td>{d.action}</td><td>{d.state}</td>"
            f"<td>{'' if d.step is None else d.step}</td><td>{d.from_version or ''}</td>"
            f"<td>{d.to_version or ''}</td><td>{escape(d.rule)}</td><td>{numbers}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _short(numbers: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in numbers.items() if k not in ("checks", "features")}


def _timeline(result: StoryResult) -> str:
    """Each challenger's stage over time (0 rolled back or rejected, 1 trained, 2 shadow,
    3 + a quarter per canary step, 4 promoted); retrainings as dashed lines."""
    levels = {"trained": 1.0, "shadow": 2.0, "canary": 3.0, "promote": 4.0}
    days = _day(result.story.start, pd.Series([d.at for d in result.decisions]))
    points: dict[str, list[tuple[float, float]]] = {}
    retrains: list[tuple[float, str]] = [(float(result.story.drift_day), "drift starts")]
    for day, d in zip(days, result.decisions, strict=True):
        if d.action == "retrain":
            retrains.append((float(day), f"retrain: {d.rule}"))
            continue
        if d.to_version is None or d.action in ("request", "check-failed"):
            continue
        level = (
            0.0
            if d.action in ("rollback", "reject", "retrain-failed")
            else levels.get(d.action, 1.0)
        )
        if d.action == "canary":
            level += 0.25 * (d.step or 0)
        points.setdefault(f"v{d.to_version}", []).append((float(day), level))
    return lines(
        points,
        x_max=result.story.days,
        y_label="0 out, 1 trained, 2 shadow, 3 canary, 4 promoted",
        events=retrains,
    )


def _rollback_notes(result: StoryResult) -> list[str]:
    """A rolled-back challenger's failed requests leave no audit rows (no bar): say so."""
    days = _day(result.story.start, pd.Series([d.at for d in result.decisions]))
    out = []
    for day, d in zip(days, result.decisions, strict=True):
        if d.action != "rollback":
            continue
        out.append(
            f'<p class="note">v{d.to_version} rolled back on day {day:.2f}: '
            f"{escape(d.rule)}. A request it failed leaves no row in the audit log, hence "
            "no bar.</p>"
        )
    return out


def write_story_report(result: StoryResult, path: Path) -> Path:
    """Write the story's report to ``path``; the path."""
    story, metric = result.story, metric_of(result)
    drift_marker = [(float(story.drift_day), "drift starts")]
    answers = result.answers
    sections = [
        f"<h1>driftloop demo: the {escape(story.model)} story</h1>",
        f"<p>{story.days} simulated days of a {story.task} model; from day {story.drift_day}, "
        f"{escape(story.drift)}. Labels arrive late. The first champion trained on the first "
        "weeks; the rest was served by the real HTTP server while the loop controller ran on "
        "simulated time.</p>",
        f"<p>Requests: {answers.total:,}; failed (non-2xx): {answers.failed}.</p>",
        "<h2>The loop's decisions</h2>",
        _timeline(result),
        _decision_table(result),
        "<h2>Drift: drifted features per daily window</h2>",
        lines(drift_by_window(result), x_max=story.days, y_label="features", events=drift_marker),
        f"<h2>Performance: realized {metric} per day on labelled rows, and estimated</h2>",
        lines(
            {**daily_performance(result), **estimated_by_window(result)},
            x_max=story.days,
            y_label=metric,
            events=drift_marker + [e for e in _events(result) if e[1][:7] == "promote"],
        ),
        '<p class="note">"estimated": monitoring\'s estimate from the scores alone, before '
        "labels (CBPE, binary models), per daily window where it made one. A concept drift "
        "leaves the scores as confident as before, so the estimate cannot see it: only the "
        "realized metric drops.</p>",
        "<h2>Traffic per arm per day (rows)</h2>",
        bars(daily_traffic(result), x_max=story.days, y_label="rows", events=drift_marker),
        *_rollback_notes(result),
    ]
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>driftloop demo: "
        f"{escape(story.model)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path
