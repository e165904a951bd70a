"""Errors over HTTP: a stable JSON body, a status chosen from the error's ``code``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

from driftloop.core.errors import DriftloopError

__all__ = [
    "STATUS_OF_CODE",
    "HttpError",
    "Violation",
    "error_body",
    "error_response",
    "json_response",
]

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
    "method-not-allowed": 405,
    "not-ready": 503,
    "unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "rate-limited": 429,
    "quota-exceeded": 429,
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

    @classmethod
    def from_error(cls, exc: DriftloopError) -> HttpError:
        return cls(exc.code, exc.message)


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
        return json_response({"error": exc.message, "code": exc.code}, exc.status, exc.headers)
    return json_response(error_body(exc), exc.status, exc.headers)


def error_body(exc: HttpError) -> dict[str, Any]:
    """The v1 error payload: ``{"error": {"code", "message"[, "violations"]}}``."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.violations:
        body["violations"] = exc.violations
    return {"error": body}
