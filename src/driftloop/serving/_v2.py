"""The Open Inference Protocol (KServe v2) REST surface, so KServe, Triton and MLServer
clients work unchanged.

An infer request gives either one tensor of shape ``[n, inputs]`` in the model's input
order, or one tensor of shape ``[n]`` per input (``FP64`` numbers, ``BOOL`` booleans,
``BYTES`` categories and times; per entity key, as ``BYTES``, for enrichment; the event
time as a tensor named like the model's timestamp column, or ``parameters.event_time``
for the whole request). The outputs follow the task: ``score`` (binary), ``class``,
``score`` and ``probabilities`` (multiclass, ``[n, classes]``), ``value`` (regression);
``decision`` when the model has a decision policy; ``prediction_id`` always.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop import __version__
from driftloop.serving._errors import HttpError, json_response, shown
from driftloop.serving._scored import audit_outputs
from driftloop.serving._server import Server, read_body
from driftloop.serving._validation import (
    EVENT_TIME,
    Options,
    RowSpec,
    parse_body,
    parse_instances,
    request_time,
    valid_key,
)

__all__ = [
    "DATATYPES",
    "infer",
    "live",
    "model_metadata",
    "model_ready",
    "ready",
    "server_metadata",
]

_NUMERIC = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
     "FP16", "FP32", "FP64"}
)  # fmt: skip
DATATYPES = _NUMERIC | {"BYTES"}


async def server_metadata(request: Request, server: Server) -> Response:
    return json_response({"name": "driftloop", "version": __version__, "extensions": []})


async def live(request: Request, server: Server) -> Response:
    return json_response({"live": True})


async def ready(request: Request, server: Server) -> Response:
    return json_response({"ready": server.ready}, 200 if server.ready else 503)


async def model_ready(request: Request, server: Server) -> Response:
    name = request.path_params["name"]
    service = server.service(name)
    return json_response({"name": name, "ready": service.current is not None})


_DATATYPE = {"number": "FP64", "boolean": "BOOL", "category": "BYTES"}


async def model_metadata(request: Request, server: Server) -> Response:
    name = request.path_params["name"]
    service = server.service(name)
    current = service.current
    assert current is not None
    model, spec = current.model, current.spec
    inputs = [{"name": f, "datatype": _datatype(spec, f), "shape": [-1]} for f in spec.inputs]
    inputs += [{"name": k, "datatype": "BYTES", "shape": [-1]} for k in spec.entity_keys]
    outputs = [
        {"name": o, "datatype": "BYTES" if o in ("class", "decision") else "FP64", "shape": [-1]}
        for o in _output_names(model.task, service.served.decision is not None)
    ]
    if model.task == "multiclass":
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    return json_response(
        {
            "name": name,
            "versions": [model.version],
            "platform": f"driftloop-{model.runtime}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "runtime": model.runtime,
                "runtime_reason": model.runtime_reason,
                "alias": service.served.alias,
                "model": service.served.name,
                "task": model.task,
                "classes": list(model.classes),
                "event_time": spec.event_field,
            },
        }
    )


def _datatype(spec: RowSpec, field: str) -> str:
    encoder = spec.slots[field].encoder
    return "BYTES" if encoder is None else _DATATYPE[encoder.spec.kind]  # None: a timestamp


def _output_names(task: str, decision: bool) -> list[str]:
    names = {"regression": ["value"], "multiclass": ["class", "score"]}.get(task, ["score"])
    return [*names, "decision"] if decision and task != "multiclass" else names


async def infer(request: Request, server: Server) -> Response:
    started = time.perf_counter()
    service = server.service(request.path_params["name"])
    body = parse_body(await read_body(request, server.settings.max_body_bytes))
    current = service.current
    assert current is not None
    spec = current.spec
    instances = _instances(body, list(spec.inputs), server.settings.max_instances)
    request_id = body.get("id")
    if request_id is not None and not (isinstance(request_id, str) and valid_key(request_id)):
        raise _bad("id", "must be a string of 1 to 256 characters without NUL")  # not scored
    parameters = body.get("parameters")
    event_time = None
    if isinstance(parameters, dict) and parameters.get(EVENT_TIME) is not None:
        event_time = request_time({EVENT_TIME: parameters[EVENT_TIME]})
    reject_unseen = service.served.missing.unseen == "reject"
    router = service.router
    answered = await service.answer(
        lambda spec: parse_instances(
            instances, spec, event_time=event_time, reject_unseen=reject_unseen
        ),
        Options(),
        key=router.key_of(instances[0]) if router.sticky_key is not None and instances else None,
        proto="v2",
        started=started,
    )
    scored = answered.scored
    server.observe("infer", time.perf_counter() - started)
    n = len(scored.ids)
    outputs: list[dict[str, Any]] = []
    if scored.task == "regression":
        outputs.append(_tensor("value", "FP64", [n], scored.outputs.tolist()))
    else:
        outputs.append(_tensor("score", "FP64", [n], scored.scores))
    if scored.task == "multiclass":
        classes = [o["class"] for o in audit_outputs(scored)]
        outputs.append(_tensor("class", "BYTES", [n], classes))
        k = len(scored.classes)
        outputs.append(_tensor("probabilities", "FP64", [n, k], scored.outputs.ravel().tolist()))
    if scored.decisions is not None:
        outputs.append(_tensor("decision", "BYTES", [n], scored.decisions))
    outputs.append(_tensor("prediction_id", "BYTES", [n], scored.ids))
    missing = {str(i): names for i, names in enumerate(scored.missing or ()) if names}
    answer: dict[str, Any] = {
        "model_name": request.path_params["name"],
        "model_version": answered.version,
        "id": request_id or uuid.uuid4().hex,
        "outputs": outputs,
        "parameters": {"route": answered.route()},
    }
    if missing:
        answer["parameters"]["missing"] = missing
    return json_response(answer)


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _bad(field: str, rule: str) -> HttpError:
    return HttpError("data-invalid", f"{field} {rule}.", [{"field": field, "rule": rule}])


def _flat(data: Any, rank: int) -> list[Any]:
    """The values of a tensor given flat or nested (at most ``rank`` deep), row-major."""
    if not isinstance(data, list):
        raise _bad("inputs.data", "must be a list")
    if data and isinstance(data[0], list):
        if rank <= 1:
            raise _bad("inputs.data", "nests lists deeper than the tensor's shape")
        return [x for row in data for x in _flat(row, rank - 1)]
    return data


def _instances(body: Any, features: list[str], max_instances: int) -> list[dict[str, Any]]:
    """The request tensors as instances: one object per row, keyed by input name."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise _bad("inputs", "must be a list of tensors {name, shape, datatype, data}")
    tensors = body["inputs"]
    if not tensors:
        raise _bad("inputs", "must not be empty")
    columns: dict[str, list[Any]] = {}
    n_rows: int | None = None
    for t, tensor in enumerate(tensors):
        where = f"inputs[{t}]"
        if not isinstance(tensor, dict):
            raise _bad(where, "must be an object")
        name, shape, dtype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise _bad(f"{where}.name", "must be a string")
        if not (
            isinstance(shape, list) and shape and all(type(d) is int and d >= 0 for d in shape)
        ):
            raise _bad(f"{where}.shape", "must be a list of non-negative integers")
        if not isinstance(dtype, str) or dtype not in DATATYPES:
            raise _bad(f"{where}.datatype", f"must be a KServe v2 datatype, got {shown(dtype)!r}")
        data = _flat(tensor.get("data"), len(shape))
        size = 1
        for d in shape:
            size *= d
        if len(data) != size:
            raise _bad(f"{where}.data", f"has {len(data)} values but shape {shape} needs {size}")
        rows = shape[0]
        if len(tensors) == 1 and len(shape) == 2 and name not in features:
            if shape[1] != len(features):
                raise _bad(f"{where}.shape", f"must be [n, {len(features)}] (the model's features)")
            width = shape[1]
            _check_rows(rows, max_instances)
            return [dict(zip(features, data[i * width : (i + 1) * width], strict=True))
                    for i in range(rows)]  # fmt: skip
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise _bad(f"{where}.shape", "must be [n] or [n, 1] for a per-feature tensor")
        if n_rows is not None and rows != n_rows:
            raise _bad(f"{where}.shape", f"has {rows} rows; an earlier input has {n_rows}")
        n_rows = rows
        columns[name] = data
    assert n_rows is not None
    _check_rows(n_rows, max_instances)
    return [{name: col[i] for name, col in columns.items()} for i in range(n_rows)]


def _check_rows(rows: int, max_instances: int) -> None:
    if rows < 1:
        raise _bad("inputs.shape", "must have at least one row")
    if rows > max_instances:
        raise _bad("inputs.shape", f"must have at most {max_instances} rows")
