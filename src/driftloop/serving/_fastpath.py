"""The hot route, ``POST /v1/models/{name}/predict``, answered straight from ASGI.

Every other path goes through Starlette's middleware, router, ``Request`` and
``Response``; on one core those layers cost about as much as scoring and auditing a
row. This path keeps the same contract: API keys (scope, tenant, rate limits, quotas,
audit storage),
JSON only (415), the body limit (413), 4xx JSON errors naming the instance, field and
rule, request counts and latency in the metrics, and a 500 JSON body for anything
unexpected (logged, a traceback per kind of failure).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from driftloop.core.errors import DriftloopError
from driftloop.serving import _v1
from driftloop.serving._errors import INTERNAL, HttpError, error_body
from driftloop.serving._idempotency import keyed
from driftloop.serving._keys import authorization_of
from driftloop.serving._server import Server, receive_body

__all__ = ["ServingApp"]

_PREFIX, _SUFFIX = "/v1/models/", "/predict"
_JSON = (b"content-type", b"application/json")


class ServingApp(Starlette):
    """Starlette, with predict requests answered before its middleware stack."""

    server: Server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                name = path[len(_PREFIX) : -len(_SUFFIX)]
                if name and "/" not in name and not keyed(scope):  # keyed: the checked route
                    await _predict(self.server, name, scope, receive, send)
                    return
        try:
            await super().__call__(scope, receive, send)
        except Exception:  # answered 500 and logged by the app's handler (see _app)
            return  # not re-raised: the server would log its whole traceback again


async def _predict(server: Server, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    status = 200
    extra: dict[str, str] = {}
    try:
        if server.gate is not None:  # API keys: the same door as the routed endpoints
            key = server.gate.authorize(authorization_of(scope["headers"]), "predict")
            service = server.owned(name, key)
            await server.admit(key, "predict")
        else:
            service = server.service(name)
        raw = await receive_body(scope, receive, server.settings.max_body_bytes)
        payload: Any = await _v1.predict_payload(server, service, raw, started)
    except HttpError as exc:
        status, payload, extra = exc.status, error_body(server.refusal("predict", exc)), exc.headers
    except DriftloopError as exc:
        error = server.refusal("predict", HttpError.from_error(exc))
        status, payload = error.status, error_body(error)
    except ClientDisconnect:
        return  # no answer to count: the client is gone
    except Exception as exc:
        server.errors.report("predict", exc)  # bounded: not a traceback per request
        status, payload = 500, error_body(INTERNAL)
    server.count("predict", status)
    await _send(send, status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), extra)


async def _send(send: Send, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
