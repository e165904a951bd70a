"""Parsing a recommend request: every refusal names its field.

``{"user_id": "42", "n": 10, "context": {"session": ["50", "181"], "gender": "F"}}``:
``user_id`` text or integer (required); ``n`` an integer from 1 to :data:`MAX_N`
(default 10); ``context`` an object whose ``session`` is a list of item ids (the most
recent last) and whose other fields are the user's features (text, number, boolean).
"""

from __future__ import annotations

from typing import Any

import orjson

from driftloop.recsys import RecommendRequest
from driftloop.serving._errors import HttpError

__all__ = ["MAX_N", "MAX_SESSION", "parse_interaction", "parse_recommend"]

MAX_N = 100
MAX_SESSION = 50
_MAX_ID = 256


def _bad(field: str, rule: str, got: Any = None) -> HttpError:
    shown = "" if got is None else f"; got {orjson.dumps(got).decode()[:80]}"
    return HttpError(
        "data-invalid", f"Field '{field}' {rule}{shown}.", [{"field": field, "rule": rule}]
    )


def _id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(field, "must be text or an integer", value)
    text = str(value)
    if not 0 < len(text) <= _MAX_ID:
        raise _bad(field, f"must have 1 to {_MAX_ID} characters")
    return text


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("body", "must be a JSON object")
    return data


def parse_recommend(body: bytes) -> RecommendRequest:
    data = _object(body)
    unknown = sorted(set(data) - {"user_id", "n", "context"})
    if unknown:
        raise _bad(unknown[0], "is not a field of a recommend request (user_id, n, context)")
    if "user_id" not in data:
        raise _bad("user_id", "is required")
    user = _id(data["user_id"], "user_id")
    n = data.get("n", 10)
    if isinstance(n, bool) or not isinstance(n, int):
        raise _bad("n", "must be an integer", n)
    if not 1 <= n <= MAX_N:
        raise _bad("n", f"must be from 1 to {MAX_N}", n)
    context = data.get("context", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise _bad("context", "must be an object", context)
    session = context.get("session", [])
    if not isinstance(session, list) or len(session) > MAX_SESSION:
        raise _bad("context.session", f"must be a list of at most {MAX_SESSION} item ids")
    items = tuple(_id(item, "context.session") for item in session)
    features = {}
    for key, value in context.items():
        if key == "session":
            continue
        if value is not None and not isinstance(value, str | int | float | bool):
            raise _bad(f"context.{key}", "must be text, a number or a boolean", value)
        features[str(key)] = None if value is None else str(value)
    return RecommendRequest(user, n, items, features)


def parse_interaction(body: bytes) -> tuple[str, str]:
    """``{"user_id": ..., "item_id": ...}``: an item the user interacted with now."""
    data = _object(body)
    for field in ("user_id", "item_id"):
        if field not in data:
            raise _bad(field, "is required")
    return _id(data["user_id"], "user_id"), _id(data["item_id"], "item_id")
