"""The Open Inference Protocol (KServe v2) REST surface, so KServe, Triton and MLServer
clients work unchanged.

An infer request gives either one tensor of shape ``[n, features]`` in the model's
feature order, or one tensor of shape ``[n]`` per feature (and per entity key, as
``BYTES``, for enrichment). The response has three outputs: ``score`` (FP64),
``decision`` and ``prediction_id`` (BYTES).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop import __version__
from driftloop.serving._errors import HttpError, json_response
from driftloop.serving._server import Server, read_body
from driftloop.serving._validation import Options, parse_body, parse_instances

__all__ = ["infer", "live", "model_metadata", "model_ready", "ready", "server_metadata"]

_NUMERIC = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
     "FP16", "FP32", "FP64"}
)  # fmt: skip


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


async def model_metadata(request: Request, server: Server) -> Response:
    name = request.path_params["name"]
    service = server.service(name)
    current = service.current
    assert current is not None
    model = current.model
    inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in current.spec.features]
    inputs += [{"name": k, "datatype": "BYTES", "shape": [-1]} for k in current.spec.entity_keys]
    return json_response(
        {
            "name": name,
            "versions": [model.version],
            "platform": f"driftloop-{model.runtime}",
            "inputs": inputs,
            "outputs": [
                {"name": "score", "datatype": "FP64", "shape": [-1]},
                {"name": "decision", "datatype": "BYTES", "shape": [-1]},
                {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
            ],
            "parameters": {
                "runtime": model.runtime,
                "runtime_reason": getattr(model, "runtime_reason", ""),
                "alias": service.served.alias,
                "model": service.served.name,
            },
        }
    )


async def infer(request: Request, server: Server) -> Response:
    started = time.perf_counter()
    service = server.service(request.path_params["name"])
    body = parse_body(await read_body(request, server.settings.max_body_bytes))
    current = service.current
    assert current is not None
    spec = current.spec
    instances = _instances(body, list(spec.features), server.settings.max_instances)
    parsed = parse_instances(instances, spec)
    model, scored = await service.predict(parsed, Options(), route="v2", started=started)
    server.observe("infer", time.perf_counter() - started)
    n = len(scored.ids)
    return json_response(
        {
            "model_name": request.path_params["name"],
            "model_version": model.version,
            "id": body.get("id") or uuid.uuid4().hex,
            "outputs": [
                {"name": "score", "datatype": "FP64", "shape": [n],
                 "data": scored.scores},
                {"name": "decision", "datatype": "BYTES", "shape": [n],
                 "data": scored.decisions},
                {"name": "prediction_id", "datatype": "BYTES", "shape": [n],
                 "data": scored.ids},
            ],
        }
    )  # fmt: skip


def _bad(field: str, rule: str) -> HttpError:
    return HttpError("data-invalid", f"{field} {rule}.", [{"field": field, "rule": rule}])


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise _bad("inputs.data", "must be a list")
    if data and isinstance(data[0], list):
        return [x for row in data for x in _flat(row)]
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
        if dtype not in _NUMERIC and dtype != "BYTES":
            raise _bad(f"{where}.datatype", f"must be a KServe v2 datatype, got {dtype!r}")
        data = _flat(tensor.get("data"))
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
