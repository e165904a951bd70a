"""The read-only pages: overview, models, one version, features, predictions, traffic.

Each handler is a plain function (Starlette runs it in its thread pool, off the event
loop) that reads through the parts' public faces and renders one template.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import LATENCY_EDGES_MS, newest_predictions, route_summary
from driftloop.core.errors import DriftloopError, NotFoundError
from driftloop.loop import rollout_state
from driftloop.registry import AliasEvent, parse_time
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import render
from driftloop.ui._svg import Segment, bars, counts, timeline

__all__ = ["features", "model", "models", "overview", "predictions", "traffic", "version"]


def _reader(request: Request) -> ProjectReader:
    reader: ProjectReader = request.app.state.reader
    return reader


def _model_names(reader: ProjectReader) -> list[str]:
    return [str(m["name"]) for m in reader.registry.list_models()]


def overview(request: Request) -> Response:
    reader = _reader(request)
    rows = []
    for listed in reader.registry.list_models():
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
    return render(request, "models.html", {"models": reader.registry.list_models()})


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
    mv = reader.registry.get(name, number)
    context = {
        "mv": mv,
        "card": reader.registry.card(name, number),
        "aliases": [a for a, v in reader.registry.aliases(name).items() if v == number],
        "pretty": lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
    }
    return render(request, "version.html", context)


def features(request: Request) -> Response:
    registry = _reader(request).features
    views, others = [], []
    if registry is not None:
        for name, (definition_version, spec) in sorted(registry.active().items()):
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
            found = reader.audit.by_entity(key.strip(), value.strip())
            context["matches"] = found.sort_values("ts", ascending=False).head(200)
    if not pid and not entity:
        context["newest"] = newest_predictions(reader.audit, limit=20)
    return render(request, "predictions.html", context)


def traffic(request: Request) -> Response:
    reader = _reader(request)
    asked = request.query_params.get("days", "1")
    days = min(max(float(asked), 1 / 24), 3660.0) if _number(asked) else 1.0
    summaries = route_summary(reader.audit, last=timedelta(days=days))
    names = sorted({*_model_names(reader), *(s.model for s in summaries)})
    per_model = []
    for name in names:
        arms = [s for s in summaries if s.model == name]
        per_model.append(
            {
                "name": name,
                "arms": arms,
                "latency": {
                    f"{s.version}/{s.route}": counts(
                        f"Latency of {name} version {s.version} on {s.route} (requests per bin)",
                        _latency_bins(s.latency_bins),
                    )
                    for s in arms
                    if s.latency_bins
                },
                "policy": reader.traffic.get(name),
                "policy_history": reader.traffic.history(name, limit=10),
                "aliases": reader.registry.aliases(name) if name in _model_names(reader) else {},
            }
        )
    span = (min(s.first for s in summaries), max(s.last for s in summaries)) if summaries else None
    context = {"models": per_model, "span": span, "days": days}
    return render(request, "traffic.html", context)


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _latency_bins(per_bin: tuple[int, ...]) -> dict[str, int]:
    names = [f"< {e:g} ms" for e in LATENCY_EDGES_MS] + [f">= {LATENCY_EDGES_MS[-1]:g} ms"]
    return {n: c for n, c in zip(names, per_bin, strict=True) if c}
