"""The drift page of a model: each feature's deciding statistic over windows against its
threshold, reference-vs-window histograms of a chosen window, verdicts and the model's
realized performance, for one version and route at a time."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import NotFoundError
from driftloop.ui._access import check_model
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import render
from driftloop.ui._svg import histogram, line_chart

__all__ = ["drift", "thresholds"]


def thresholds(config: MonitoringConfig) -> dict[str, float]:
    """The statistic that decides a feature's drift -> its threshold (PSI for numbers,
    Jensen-Shannon for categories, as the monitor decides)."""
    return {"psi": config.psi_threshold, "jensen_shannon": config.js_threshold}


def _choice(request: Request, windows: list[dict[str, Any]]) -> tuple[int, str]:
    """The version and route asked for, else the pair with the most records."""
    version, route = request.query_params.get("version"), request.query_params.get("route")
    if version and route:
        return int(version), route
    counts: Counter[tuple[int, str]] = Counter()
    for w in windows:
        counts[(int(w["version"]), str(w["route"]))] += int(w["rows"])
    return counts.most_common(1)[0][0]


def _aware(when: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives them back naive)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _value(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _points(rows: list[dict[str, Any]]) -> list[tuple[datetime, float | None]]:
    return [(_aware(r["window_end"]), _value(r["value"])) for r in rows]


def drift(request: Request) -> Response:
    reader: ProjectReader = request.app.state.reader
    name = request.path_params["name"]
    check_model(request, reader, name)
    every = reader.windows(name)
    if not every:
        reader.registry.latest_version(name)  # an unknown model is named as such
        return render(request, "drift.html", {"name": name, "windows": [], "pairs": []})
    version, route = _choice(request, every)
    pairs = sorted({(int(w["version"]), str(w["route"])) for w in every})
    windows = [w for w in every if int(w["version"]) == version and w["route"] == route]
    if not windows:
        raise NotFoundError(f"Model '{name}' has no window of version {version} on {route}.")
    by_id = {int(w["id"]): w for w in windows}
    asked = request.query_params.get("window")
    if asked is not None and asked.isdigit() and int(asked) in by_id:
        chosen = by_id[int(asked)]
    else:
        judged = [w for w in windows if w["verdict"] != "insufficient-data"] or windows
        chosen = judged[-1]
    summary = json.loads(chosen["summary"])
    metric = summary.get("metric")
    limits = thresholds(reader.settings.monitoring)
    wanted = ["ks", *limits, *([metric] if metric else [])]  # ks: a number's feature
    series = reader.results([int(w["id"]) for w in windows], wanted)
    chosen_end = _aware(chosen["window_end"])
    charts = _feature_charts(series, limits, chosen_end, int(chosen["id"]))
    performance = None
    if metric:
        own = [r for r in series if r["feature"] == "" and r["statistic"] == metric]
        performance = line_chart(
            f"Realized {metric} of {name} version {version} over windows",
            {metric: _points(own)},
            marked=[chosen_end],
        )
    stored = reader.histograms(int(chosen["id"]))
    hists = json.loads(stored) if stored else {}
    drifted = set(summary.get("drifted_features", []))
    order = sorted(hists, key=lambda f: (f not in drifted, f))
    context = {
        "name": name,
        "version": version,
        "route": route,
        "pairs": pairs,
        "windows": list(reversed(windows)),
        "chosen": chosen,
        "summary": summary,
        "charts": charts,
        "performance": performance,
        "baseline": ((summary.get("baseline") or {}).get("metrics") or {}).get(metric),
        "histograms": [
            (
                f,
                f in drifted,
                histogram(
                    f"{f}: reference (bars) vs window ending {chosen['window_end']:%Y-%m-%d %H:%M}",
                    hists[f]["reference"],
                    hists[f]["current"],
                ),
            )
            for f in order
        ],
    }
    return render(request, "drift.html", context)


def _feature_charts(
    series: list[dict[str, Any]], limits: dict[str, float], chosen_end: datetime, chosen_id: int
) -> list[dict[str, Any]]:
    """One chart per input feature, drifted ones in the chosen window first, then the
    score's (an output: its drift follows the inputs')."""
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for row in series:
        if row["feature"]:
            by_feature.setdefault(str(row["feature"]), []).append(row)
    charts = []
    for feature, every in sorted(by_feature.items()):
        # numbers are tested with KS, categories with chi-square: each has its deciding one
        statistic = "psi" if any(r["statistic"] == "ks" for r in every) else "jensen_shannon"
        rows = [r for r in every if r["statistic"] == statistic]
        if not rows:
            continue
        now = [r for r in rows if r["window_id"] == chosen_id]
        charts.append(
            {
                "feature": feature,
                "statistic": statistic,
                "threshold": limits[statistic],
                "drifted": any(bool(r["drifted"]) for r in now),
                "windows_over": sum(bool(r["drifted"]) for r in rows),
                "value": _value(now[0]["value"]) if now else None,
                "svg": line_chart(
                    f"{feature}: {statistic} per window (threshold {limits[statistic]:g})",
                    {feature: _points(rows)},
                    threshold=limits[statistic],
                    marked=[chosen_end],
                ),
            }
        )
    return sorted(
        charts,
        key=lambda c: (c["feature"] == "score", not c["drifted"], -c["windows_over"], c["feature"]),
    )
