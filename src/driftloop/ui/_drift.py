"""The drift page of a model: each feature's deciding statistic over windows against its
threshold, reference-vs-window histograms of a chosen window, verdicts and the model's
realized performance, for one version and route at a time."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
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


def _points(frame: pd.DataFrame) -> list[tuple[datetime, float | None]]:
    ends = pd.to_datetime(frame["window_end"], utc=True)
    return [
        (end.to_pydatetime(), None if pd.isna(v) else float(v))
        for end, v in zip(ends, frame["value"], strict=True)
    ]


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
    charts = _feature_charts(series, limits, pd.Timestamp(chosen["window_end"]), int(chosen["id"]))
    performance = None
    if metric:
        own = series[(series["feature"] == "") & (series["statistic"] == metric)]
        performance = line_chart(
            f"Realized {metric} of {name} version {version} over windows",
            {metric: _points(own)},
            marked=[pd.Timestamp(chosen["window_end"]).to_pydatetime()],
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
    series: pd.DataFrame, limits: dict[str, float], chosen_end: pd.Timestamp, chosen_id: int
) -> list[dict[str, Any]]:
    """One chart per input feature, drifted ones in the chosen window first, then the
    score's (an output: its drift follows the inputs')."""
    charts = []
    for feature, every in series[series["feature"] != ""].groupby("feature", sort=True):
        # numbers are tested with KS, categories with chi-square: each has its deciding one
        statistic = "psi" if (every["statistic"] == "ks").any() else "jensen_shannon"
        rows = every[every["statistic"] == statistic]
        if rows.empty:
            continue
        now = rows[rows["window_id"] == chosen_id]
        drifted_now = bool(now["drifted"].any())
        windows_over = int(rows["drifted"].sum())
        charts.append(
            {
                "feature": str(feature),
                "statistic": statistic,
                "threshold": limits[statistic],
                "drifted": drifted_now,
                "windows_over": windows_over,
                "value": None
                if now.empty or pd.isna(now["value"].iloc[0])
                else now["value"].iloc[0],
                "svg": line_chart(
                    f"{feature}: {statistic} per window (threshold {limits[statistic]:g})",
                    {str(feature): _points(rows)},
                    threshold=limits[statistic],
                    marked=[chosen_end.to_pydatetime()],
                ),
            }
        )
    return sorted(
        charts,
        key=lambda c: (c["feature"] == "score", not c["drifted"], -c["windows_over"], c["feature"]),
    )
