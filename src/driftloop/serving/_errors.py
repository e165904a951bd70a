"""Errors over HTTP: a stable JSON body, a status chosen from the error's ``code``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

from driftloop.core.errors import DriftloopError

__all__ = [
    "INTERNAL",
    "STATUS_OF_CODE",
    "HttpError",
    "Violation",
    "error_body",
    "error_response",
    "json_response",
    "shown",
]

MAX_MESSAGE = 1_000  # characters of an error message sent back
MAX_SHOWN = 100  # characters of a value (or of its JSON) echoed in a violation

# The mapping from error code to HTTP status lives here, not on the errors (STYLE.md).
STATUS_OF_CODE: Mapping[str, int] = {
    "invalid-parameter": 422,
    "data-invalid": 422,
    "schema-mismatch": 422,
    "insufficient-data": 422,
    "not-found": 404,
    "unknown-feature": 422,
    "model-not-found": 404,
    "alias-not-found": 404,
    "conflict": 409,
    "incompatible-change": 409,
    "backend-unavailable": 503,
    "body-too-large": 413,
    "body-invalid": 400,
    "unsupported-media-type": 415,
    "method-not-allowed": 405,
    "not-ready": 503,
    "unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "rate-limited": 429,
    "quota-exceeded": 429,
    "audit-quota-exceeded": 507,
}

Violation = dict[str, Any]  # {"instance": i, "field": name, "rule": text, ...}


class HttpError(Exception):
    """A refusal with its code, message and the violated rules (instance, field, rule);
    ``headers`` go with the answer (``Retry-After`` of a 429)."""

    def __init__(
        self,
        code: str,
        message: str,
        violations: Sequence[Violation] = (),
        status: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = list(violations)
        self.status = status or STATUS_OF_CODE.get(code, 400)
        self.headers = dict(headers or {})
        self.detail: str | None = None  # what the server logs but does not send

    @classmethod
    def from_error(cls, exc: DriftloopError) -> HttpError:
        """The error over HTTP; a backend's failure (5xx) keeps its message, which may
        name a database URL or a path, for the server's log only."""
        error = cls(exc.code, exc.message)
        if error.status >= 500:
            error.message = _GENERIC.get(exc.code, "The server could not answer; retry later.")
            error.detail = f"{type(exc).__name__}: {exc.message}"
        return error


INTERNAL = HttpError("internal", "The server failed to answer; it is logged.", status=500)

_GENERIC = {
    "backend-unavailable": "A backend this request needs is unavailable; retry later.",
}


def shown(value: Any) -> Any:
    """``value`` as an error may echo it: a scalar, a string cut to ``MAX_SHOWN``
    characters, an object or array as its JSON text, cut likewise."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else f"{str(value)[:20]}... (an integer)"
    if isinstance(value, str):
        return value if len(value) <= MAX_SHOWN else f"{value[:MAX_SHOWN]}..."
    try:
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # nested past orjson's limit, or not JSON at all
        return f"<{type(value).__name__}>"
    return value if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}..."


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(exc: HttpError, *, v2: bool = False) -> Response:
    """``{"error": {"code", "message", "violations"}}``; the v2 protocol wants a string."""
    if v2:
        return json_response({"error": _message(exc), "code": exc.code}, exc.status, exc.headers)
    return json_response(error_body(exc), exc.status, exc.headers)


def error_body(exc: HttpError) -> dict[str, Any]:
    """The v1 error payload: ``{"error": {"code", "message"[, "violations"]}}``, every
    echoed value bounded (:func:`shown`)."""
    body: dict[str, Any] = {"code": exc.code, "message": _message(exc)}
    if exc.violations:
        body["violations"] = [_bounded(v) for v in exc.violations]
    return {"error": body}


def _bounded(violation: Violation) -> Violation:
    out = dict(violation)
    for key in ("field", "got"):
        if key in out:
            out[key] = shown(out[key])
    rule = out.get("rule")
    if isinstance(rule, str) and len(rule) > MAX_MESSAGE:
        out["rule"] = f"{rule[:MAX_MESSAGE]}..."
    return out


def _message(exc: HttpError) -> str:
    message = exc.message
    return message if len(message) <= MAX_MESSAGE else f"{message[:MAX_MESSAGE]}..."
