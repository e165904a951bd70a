"""driftloop's own endpoints: predict and feedback."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import Label, LabelOutcome
from driftloop.core.errors import NotFoundError
from driftloop.registry import InvalidValue
from driftloop.serving._errors import HttpError, json_response
from driftloop.serving._feedback import feedback_answer, feedback_caller
from driftloop.serving._scored import Scored, audit_outputs
from driftloop.serving._server import Server, read_body
from driftloop.serving._service import Service
from driftloop.serving._validation import (
    RowSpec,
    event_time_of,
    instances_of,
    parse_body,
    parse_instances,
    parse_options,
    request_time,
    valid_key,
)
from driftloop.stats import category_text

__all__ = ["feedback", "list_models", "predict", "predict_payload", "predictions", "visible"]


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
    event_time = request_time(body)
    reject_unseen = service.served.missing.unseen == "reject"
    router = service.router
    answer = await service.answer(
        lambda spec: parse_instances(
            instances, spec, event_time=event_time, reject_unseen=reject_unseen
        ),
        options,
        key=router.key_of(instances[0]) if router.sticky_key is not None else None,
        proto="v1",
        started=started,
    )
    server.observe("predict", time.perf_counter() - started)
    answers = predictions(answer.scored)
    parsed = answer.parsed
    if spec.id_field is not None and any(parsed.entity_rows):
        for row, given in zip(answers, parsed.entity_rows, strict=True):
            if spec.id_field in given:  # the caller's id, to match answers to rows
                row["id"] = given[spec.id_field]
    return {
        "model": answer.model,
        "version": answer.version,
        "route": answer.route(),
        "predictions": answers,
    }


def predictions(scored: Scored) -> list[dict[str, Any]]:
    """One answer per row: its id and the task's outputs (binary ``score``, multiclass
    ``class``, ``probabilities`` and ``score``, regression ``value``), the decision when a
    policy gives one, and the features it had no value for."""
    ids = scored.ids
    if scored.task == "regression":
        values = scored.outputs.tolist()
        out = [{"prediction_id": p, "value": v} for p, v in zip(ids, values, strict=True)]
    elif scored.task == "multiclass":
        out = [
            {"prediction_id": p, **o, "score": max(o["probabilities"].values())}
            for p, o in zip(ids, audit_outputs(scored), strict=True)
        ]
    else:
        scores = scored.outputs.tolist()
        out = [{"prediction_id": p, "score": s} for p, s in zip(ids, scores, strict=True)]
    if scored.decisions is not None:
        for row, decision in zip(out, scored.decisions, strict=True):
            row["decision"] = decision
    for i, names in enumerate(scored.missing or ()):
        if names:
            out[i]["missing"] = names
    for i, names in scored.unseen.items():
        out[i]["unseen"] = names
    if scored.explanations is not None:
        for row, explanation in zip(out, scored.explanations, strict=True):
            row["explanation"] = explanation
    return out


async def feedback(request: Request, server: Server) -> Response:
    """Labels for earlier predictions. A label is the class's name (or ``true``/``false``
    for a binary model), or a number: binary 0/1, a regression's value. Names are matched
    against the classes of the prediction's model, read from its audit record. Who may
    send them, relabels and what the answer names: :mod:`._feedback`."""
    if server.audit is None or server.labels is None:
        raise HttpError("not-ready", "Feedback needs the audit log, which is off.")
    caller = feedback_caller(request, server)
    body = parse_body(await read_body(request, server.settings.max_body_bytes))
    labels = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(labels, list) or not labels:
        raise _bad(None, "labels", "must be a non-empty list of {prediction_id, label[, ts]}")
    if len(labels) > server.settings.max_instances:
        raise _bad(None, "labels", f"must hold at most {server.settings.max_instances} labels")
    relabel = body.get("relabel", False)
    if not isinstance(relabel, bool):
        raise _bad(None, "relabel", "must be true or false")
    given = [_label(i, item) for i, item in enumerate(labels)]
    parsed, missing = await asyncio.to_thread(_resolve, server, given, caller.tenant)
    outcome = LabelOutcome(0)
    if parsed:
        outcome = await asyncio.to_thread(
            server.labels.set_labels,
            parsed,
            relabel=relabel,
            actor=caller.actor,
            now=server.clock(),
        )
    return json_response(feedback_answer(caller, outcome, missing, [g[0] for g in given]))


def _label(i: int, item: Any) -> tuple[str, Any, datetime | None]:
    if not isinstance(item, dict):
        raise _bad(i, None, "must be an object")
    extra = sorted(set(item) - {"prediction_id", "label", "ts"})
    if extra:
        raise _bad(i, extra[0], "unknown field; known: prediction_id, label, ts")
    pid, value, ts = item.get("prediction_id"), item.get("label"), item.get("ts")
    if not isinstance(pid, str) or not valid_key(pid):
        raise _bad(i, "prediction_id", "must be a string of 1 to 256 characters without NUL")
    if isinstance(value, str):
        if not value or len(value) > 256:
            raise _bad(i, "label", "must be a class name of 1 to 256 characters")
    elif isinstance(value, bool):
        pass
    elif not isinstance(value, int | float) or not _finite(value):
        raise _bad(i, "label", "must be a class name, true/false or a finite number")
    when = None
    if ts is not None:
        if not isinstance(ts, str):
            raise _bad(i, "ts", "must be an ISO 8601 date-time string")
        try:
            when = event_time_of(ts)
        except InvalidValue as exc:
            raise _bad(i, "ts", exc.rule) from None
    return pid, value, when


def _resolve(
    server: Server, given: list[tuple[str, Any, datetime | None]], tenant: str | None
) -> tuple[list[Label], list[str]]:
    """The labels as numbers (the class's index, or the value), and the prediction ids
    the audit log does not know; with ``tenant`` (an API key's), another tenant's
    predictions count as unknown."""
    assert server.audit is not None
    models: dict[str, tuple[str, tuple[str, ...]] | None] = {}
    out: list[Label] = []
    unknown: list[str] = []
    for i, (pid, value, when) in enumerate(given):
        try:
            record = server.audit.get(pid)
        except NotFoundError:
            unknown.append(pid)
            continue
        if tenant is not None and _model_tenant(server, record.model) != tenant:
            unknown.append(pid)
            continue
        if record.model not in models:
            models[record.model] = _task_of(server, record.model)
        out.append(Label(pid, _number(i, value, record.model, models[record.model]), when))
    return out, unknown


def _model_tenant(server: Server, model: str) -> str:
    for service in server.services.values():
        if service.served.name == model:
            return server.tenant_of(service)
    return server.gate.tenant_of(model) if server.gate is not None else "default"


def _task_of(server: Server, model: str) -> tuple[str, tuple[str, ...]] | None:
    for service in server.services.values():
        if service.served.name == model and service.current is not None:
            loaded = service.current.model
            return loaded.task, loaded.classes
    return None


def _number(i: int, value: Any, model: str, task: tuple[str, tuple[str, ...]] | None) -> float:
    if task is None:  # a model not served here (batch-scored rows): numbers only
        if isinstance(value, str):
            raise _bad(i, "label", f"is a class name, but model '{model}' is not served here "
                       "to name its classes; send the class's index")  # fmt: skip
        return float(value)
    kind, classes = task
    if kind == "regression":
        if isinstance(value, bool | str):
            raise _bad(i, "label", f"must be a number (model '{model}' is a regression)")
        return float(value)
    if isinstance(value, bool) and kind == "binary":
        return 1.0 if value else 0.0
    text = category_text(value)
    if text in classes:
        return float(classes.index(text))
    if kind == "binary" and not isinstance(value, str) and value in (0, 1):
        return float(value)  # 1: the positive class
    raise _bad(i, "label", f"is not a class of model '{model}'; classes: {', '.join(classes)}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _bad(i: int | None, field: str | None, rule: str) -> HttpError:
    where = f"label {i}, " if i is not None else ""
    violation = {"field": field, "rule": rule, **({"instance": i} if i is not None else {})}
    return HttpError("data-invalid", f"{where}field '{field}' {rule}.", [violation])


def visible(request: Request, server: Server) -> list[tuple[str, Service]]:
    """The served models a request may see, by public name: with API keys, its key's
    tenant's; else all."""
    key = getattr(request.state, "key", None)
    services = sorted(server.services.items())
    if key is None:
        return services
    return [(p, s) for p, s in services if server.tenant_of(s) == key.tenant]


async def list_models(request: Request, server: Server) -> Response:
    models = []
    for public, service in visible(request, server):
        current = service.current
        models.append(
            {
                "name": public,
                "model": service.served.name,
                "alias": service.served.alias,
                "version": current.model.version if current else None,
                "runtime": current.model.runtime if current else None,
                "task": current.model.task if current else None,
                "classes": list(current.model.classes) if current else [],
                "features": list(current.spec.features) if current else [],
                "inputs": _inputs(current.spec) if current else [],
                "entity_keys": list(service.served.entity_keys),
                "event_time": current.spec.event_field if current else None,
                "decision": service.served.decision is not None,
                "missing_policy": service.served.missing.policy,
            }
        )
    return json_response({"models": models})


def _inputs(spec: RowSpec) -> list[dict[str, Any]]:
    """Each request field the model takes: its name and kind (``number``, ``boolean``,
    ``category`` with its categories, ``timestamp``)."""
    out = []
    for name in spec.inputs:
        slot = spec.slots[name]
        if slot.encoder is None:
            out.append({"name": name, "kind": "timestamp"})
        else:
            item: dict[str, Any] = {"name": name, "kind": slot.encoder.spec.kind}
            if slot.encoder.spec.categories:
                item["categories"] = list(slot.encoder.spec.categories)
            out.append(item)
    return out
