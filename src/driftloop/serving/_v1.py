"""driftloop's own endpoints: predict and feedback."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import Label
from driftloop.serving._errors import HttpError, json_response
from driftloop.serving._server import Server, read_body
from driftloop.serving._service import Service
from driftloop.serving._validation import (
    instances_of,
    parse_body,
    parse_instances,
    parse_options,
    valid_key,
)

__all__ = ["feedback", "list_models", "predict", "predict_payload"]


async def predict(request: Request, server: Server) -> Response:
    started = time.perf_counter()
    service = server.service(request.path_params["name"])
    raw = await read_body(request, server.settings.max_body_bytes)
    return json_response(await predict_payload(server, service, raw, started))


async def predict_payload(
    server: Server, service: Service, raw: bytes, started: float
) -> dict[str, Any]:
    """The predict answer for body ``raw`` (shared by the route and the fast path)."""
    body = parse_body(raw)
    instances = instances_of(body, server.settings.max_instances)
    assert service.current is not None
    spec = service.current.spec
    options = parse_options(body.get("options"), len(spec.features))
    parsed = parse_instances(instances, spec)
    model, scored = await service.predict(parsed, options, route="v1", started=started)
    server.observe("predict", time.perf_counter() - started)
    columns = zip(scored.ids, scored.scores, scored.decisions, strict=True)
    out: list[dict[str, Any]] = [
        {"prediction_id": pid, "score": score, "decision": decision}
        for pid, score, decision in columns
    ]
    if scored.explanations is not None:
        for row, explanation in zip(out, scored.explanations, strict=True):
            row["explanation"] = explanation
    return {"model": model.name, "version": model.version, "predictions": out}


async def feedback(request: Request, server: Server) -> Response:
    if server.audit is None:
        raise HttpError("not-ready", "Feedback needs the audit log, which is off.")
    body = parse_body(await read_body(request, server.settings.max_body_bytes))
    labels = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(labels, list) or not labels:
        raise _bad(None, "labels", "must be a non-empty list of {prediction_id, label[, ts]}")
    if len(labels) > server.settings.max_instances:
        raise _bad(None, "labels", f"must hold at most {server.settings.max_instances} labels")
    parsed = [_label(i, item) for i, item in enumerate(labels)]
    unknown = await asyncio.to_thread(server.audit.add_labels, parsed)
    return json_response({"accepted": len(parsed) - len(set(unknown)), "unknown": unknown})


def _label(i: int, item: Any) -> Label:
    if not isinstance(item, dict):
        raise _bad(i, None, "must be an object")
    extra = sorted(set(item) - {"prediction_id", "label", "ts"})
    if extra:
        raise _bad(i, extra[0], "unknown field; known: prediction_id, label, ts")
    pid, value, ts = item.get("prediction_id"), item.get("label"), item.get("ts")
    if not isinstance(pid, str) or not valid_key(pid):
        raise _bad(i, "prediction_id", "must be a string of 1 to 256 characters without NUL")
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _bad(i, "label", "must be a finite number")
    when = None
    if ts is not None:
        try:
            when = datetime.fromisoformat(ts) if isinstance(ts, str) else None
        except ValueError:
            when = None
        if when is None:
            raise _bad(i, "ts", "must be an ISO 8601 date-time string")
    return Label(pid, float(value), when)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _bad(i: int | None, field: str | None, rule: str) -> HttpError:
    where = f"label {i}, " if i is not None else ""
    violation = {"field": field, "rule": rule, **({"instance": i} if i is not None else {})}
    return HttpError("data-invalid", f"{where}field '{field}' {rule}.", [violation])


async def list_models(request: Request, server: Server) -> Response:
    models = []
    for public, service in sorted(server.services.items()):
        current = service.current
        models.append(
            {
                "name": public,
                "model": service.served.name,
                "alias": service.served.alias,
                "version": current.model.version if current else None,
                "runtime": current.model.runtime if current else None,
                "features": list(current.spec.features) if current else [],
                "entity_keys": list(service.served.entity_keys),
            }
        )
    return json_response({"models": models})
