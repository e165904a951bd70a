"""The read-only pages: overview, models, one version, features, predictions, traffic.

Each handler is a plain function (Starlette runs it in its thread pool, off the event
loop) that reads through the parts' public faces and renders one template.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import (
    LATENCY_EDGES_MS,
    SCORE_EDGES,
    PostgresAuditLog,
    entity_predictions,
    newest_predictions,
    route_summary,
)
from driftloop.core.errors import DriftloopError, NotFoundError
from driftloop.loop import Decision, history, rollout_state
from driftloop.registry import AliasEvent, parse_time
from driftloop.serving import WorkerBoard
from driftloop.ui._access import check_model, models_of, viewer
from driftloop.ui._arms import arms_now
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import render
from driftloop.ui._svg import Segment, bars, counts, timeline

__all__ = ["features", "model", "models", "overview", "predictions", "traffic", "version"]


def _reader(request: Request) -> ProjectReader:
    reader: ProjectReader = request.app.state.reader
    return reader


def _model_names(request: Request) -> list[str]:
    """The registry's models the viewer may see (with API keys: its tenant's)."""
    return [str(m["name"]) for m in models_of(request, _reader(request))]


def overview(request: Request) -> Response:
    reader = _reader(request)
    rows = []
    for listed in models_of(request, reader):
        name = str(listed["name"])
        windows = reader.latest_windows(name)
        judged = [w for w in windows if w["verdict"] != "insufficient-data"] or windows
        last = judged[0] if judged else None
        summary = json.loads(last["summary"]) if last else {}
        metric = summary.get("metric")
        labelled = reader.newest_labelled_window(name)
        realized = json.loads(labelled["summary"]) if labelled else {}
        performance = (realized.get("performance") or {}).get("metrics", {})
        rows.append(
            {
                "name": name,
                "latest": listed["latest_version"],
                "aliases": listed["aliases"],
                "traffic": reader.traffic.get(name),
                "configured": _configured(reader, name),
                "last": last,
                "metric": metric,
                "realized": performance.get(metric) if metric else None,
                "realized_window": labelled,
                "estimated": (
                    ((summary.get("estimated_performance") or {}).get("metrics") or {}).get(metric)
                ),
                "reference": ((summary.get("baseline") or {}).get("metrics") or {}).get(metric),
                "incidents": reader.open_incidents(name),
                "rollout": rollout_state(reader.registry.engine, name),
            }
        )
    return render(request, "overview.html", {"models": rows})


def _configured(reader: ProjectReader, name: str) -> dict[str, Any] | None:
    """The settings file's traffic policy of ``name`` (None: all to its alias)."""
    policy = reader.settings.serving.traffic.get(name)
    return None if policy is None else policy.model_dump(exclude_none=True)


def models(request: Request) -> Response:
    reader = _reader(request)
    return render(request, "models.html", {"models": models_of(request, reader)})


def segments(history: list[AliasEvent]) -> list[Segment]:
    """Each alias's holders as time segments, from its history (oldest first)."""
    out: list[Segment] = []
    holding: dict[str, AliasEvent] = {}
    for event in history:
        held = holding.pop(event.alias, None)
        if held is not None and held.version is not None:
            out.append(Segment(event.alias, held.version, held.at, event.at, held.who))
        holding[event.alias] = event
    out += [
        Segment(e.alias, e.version, e.at, None, e.who)
        for e in holding.values()
        if e.version is not None
    ]
    return sorted(out, key=lambda s: (s.alias, s.start))


def model(request: Request) -> Response:
    reader = _reader(request)
    name = request.path_params["name"]
    check_model(request, reader, name)
    registry = reader.registry
    versions = registry.versions(name)
    if not versions:
        raise NotFoundError(f"No model named '{name}' in the registry.")
    history = registry.history(name)
    aliases = registry.aliases(name)
    at_text = request.query_params.get("at", "").strip()
    served_at: dict[str, int | None] = {}
    at_error = None
    if at_text:
        try:
            at = parse_time(at_text)
            for alias in dict.fromkeys(e.alias for e in history):
                try:
                    served_at[alias] = registry.alias_at(name, alias, at).version
                except DriftloopError:
                    served_at[alias] = None
        except (DriftloopError, ValueError) as exc:
            at_error = str(exc)
    now = datetime.now(UTC)
    chart = timeline(f"Alias history of {name}", segments(history), now)
    context = {
        "name": name,
        "versions": list(reversed(versions)),
        "aliases": aliases,
        "history": list(reversed(history)),
        "timeline": chart,
        "at": at_text,
        "served_at": served_at,
        "at_error": at_error,
    }
    return render(request, "model.html", context)


def version(request: Request) -> Response:
    reader = _reader(request)
    name, number = request.path_params["name"], int(request.path_params["version"])
    check_model(request, reader, name)
    mv = reader.registry.get(name, number)
    context = {
        "mv": mv,
        "card": reader.registry.card(name, number),
        "aliases": [a for a, v in reader.registry.aliases(name).items() if v == number],
        "pretty": lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
    }
    return render(request, "version.html", context)


def features(request: Request) -> Response:
    """The active feature definitions (with API keys: the key's tenant's only)."""
    registry = _reader(request).features
    views, others = [], []
    if registry is not None:
        active = registry.active(viewer(request).tenant)
        for name, (definition_version, spec) in sorted(active.items()):
            kind = str(spec.get("kind", ""))
            if not kind.endswith("view"):  # entities, on-demand features: no rows of their own
                others.append({"name": name, "version": definition_version, "kind": kind})
                continue
            history = registry.stats_history(name, limit=20)
            views.append(
                {
                    "name": name,
                    "version": definition_version,
                    "kind": kind,
                    "latest": history[0] if history else None,
                    "history": history,
                }
            )
    return render(request, "features.html", {"views": views, "others": others})


def predictions(request: Request) -> Response:
    reader = _reader(request)
    pid = request.query_params.get("id", "").strip()
    entity = request.query_params.get("entity", "").strip()
    context: dict[str, Any] = {"id": pid, "entity": entity, "record": None, "error": None}
    if pid:
        try:
            record = reader.audit.get(pid)
            if viewer(request).tenant is not None and record.model not in _model_names(request):
                raise NotFoundError(f"No prediction with id '{pid}'.")  # another tenant's
            context["record"] = record
            context["explanation"] = (
                bars(f"Explanation of prediction {pid}", dict(record.explanation))
                if record.explanation
                else None
            )
        except NotFoundError as exc:
            context["error"] = str(exc)
    elif entity:
        key, sep, value = entity.partition("=")
        if not sep or not key.strip():
            context["error"] = f"Entity {entity!r}: expected name=value (applicant_id=42)."
        else:
            mine = _model_names(request) if viewer(request).tenant is not None else None
            found = entity_predictions(reader.audit, key.strip(), value.strip(), models=mine)
            context["matches"] = _rows(found)
    if not pid and not entity:
        context["newest"] = _rows(_newest(request, reader))
    return render(request, "predictions.html", context)


_ROW_COLUMNS = ["prediction_id", "ts", "model", "version", "route", "score", "decision", "label"]


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as plain values (a template reading a frame's Arrow-backed cells
    one by one spends more than the query did)."""
    columns = {c: frame[c].tolist() for c in _ROW_COLUMNS}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _newest(request: Request, reader: ProjectReader, limit: int = 20) -> pd.DataFrame:
    """The newest predictions the viewer may see (with API keys: of its tenant's models,
    each asked of the log by model)."""
    if viewer(request).tenant is None:
        return newest_predictions(reader.audit, limit=limit)
    frames = [newest_predictions(reader.audit, m, limit=limit) for m in _model_names(request)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return newest_predictions(reader.audit, "", limit=0)
    return pd.concat(frames).sort_values("ts", ascending=False).head(limit)


def traffic(request: Request) -> Response:
    reader = _reader(request)
    asked = request.query_params.get("days", "1")
    days = min(max(float(asked), 1 / 24), 3660.0) if _number(asked) else 1.0
    summaries = route_summary(reader.audit, last=timedelta(days=days), max_rows=_MAX_ROWS)
    summed = sum(s.requests for s in summaries)
    capped = (
        _MAX_ROWS if isinstance(reader.audit, PostgresAuditLog) and summed >= _MAX_ROWS else None
    )
    registered = _model_names(request)
    if viewer(request).tenant is None:  # also models only the audit log knows
        names = sorted({*registered, *(s.model for s in summaries)})
    else:
        names = registered
        summaries = [s for s in summaries if s.model in registered]
    board: WorkerBoard = request.app.state.board
    reports = board.read()
    per_model = []
    for name in names:
        arms = [s for s in summaries if s.model == name]
        merged, workers = arms_now(reports, name)
        per_model.append(
            {
                "name": name,
                "arms": arms,
                "errors": sum(s.requests for s in arms if s.fallback),
                "latency": {
                    f"{s.version}/{s.route}": counts(
                        f"Latency of {name} version {s.version} on {s.route} (requests per bin)",
                        _bins(s.latency_bins, LATENCY_EDGES_MS, "ms"),
                    )
                    for s in arms
                    if s.latency_bins
                },
                "scores": {
                    f"{s.version}/{s.route}": counts(
                        f"Scores of {name} version {s.version} on {s.route} (requests per bin)",
                        _bins(s.score_bins, SCORE_EDGES, ""),
                    )
                    for s in arms
                    if s.score_bins
                },
                "now": merged,
                "workers": workers,
                "rollout": rollout_state(reader.registry.engine, name),
                "check": _last_check(reader, name),
                "policy": reader.traffic.get(name),
                "policy_history": reader.traffic.history(name, limit=10),
                "aliases": reader.registry.aliases(name) if name in registered else {},
            }
        )
    span = (min(s.first for s in summaries), max(s.last for s in summaries)) if summaries else None
    context = {
        "models": per_model,
        "span": span,
        "days": days,
        "flat": flat_numbers,
        "capped": capped,
        "stale_s": board.stale_s,
        "here": board.worker,
    }
    return render(request, "traffic.html", context)


# predictions a traffic page sums at most where the audit log keeps no hourly rollups
# (PostgreSQL): about 100 ms of the database's time
_MAX_ROWS = 100_000


def _last_check(reader: ProjectReader, name: str) -> Decision | None:
    """The loop controller's newest decision on a rollout step (shadow or canary), with
    the test's numbers: what moved, held or rolled back the challenger."""
    for decision in reversed(history(reader.registry.engine, name, limit=50)):
        if decision.state in ("shadow", "canary") or "stage" in decision.numbers:
            return decision
    return None


def flat_numbers(numbers: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A decision's numbers as (name, value) rows, nested ones named ``outer.inner``."""
    rows: list[tuple[str, Any]] = []
    for key, value in dict(numbers).items():
        if isinstance(value, dict):
            rows += flat_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, list | tuple):
            rows.append((f"{prefix}{key}", ", ".join(str(v) for v in value)))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _bins(per_bin: tuple[int, ...], edges: tuple[float, ...], unit: str) -> dict[str, int]:
    names = [f"< {e:g}{unit and ' ' + unit}" for e in edges] + [
        f">= {edges[-1]:g}{unit and ' ' + unit}"
    ]
    return {n: c for n, c in zip(names, per_bin, strict=True) if c}
