"""Admin actions: roll an alias back, change a model's traffic split.

Each is two steps: a GET page that says what will change and asks for the admin token
(the serving admin API's token, checked by the same function) with who is acting and
why; then the POST of that form, which does it and records who. A POST without a valid
token is refused with a 403 page and changes nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from driftloop.core.config import TrafficPolicy
from driftloop.core.errors import ConflictError
from driftloop.serving import actor_name, token_matches
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import message, render

__all__ = ["confirm_rollback", "confirm_split", "do_rollback", "do_split"]


_MAX_FORM_BYTES = 64 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The posted form (``application/x-www-form-urlencoded``, what the pages' forms send:
    no multipart parser needed), each field's last value."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:  # no page posts this much: read no further
            return {}
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _reader(request: Request) -> ProjectReader:
    reader: ProjectReader = request.app.state.reader
    return reader


def _refused(request: Request, form: Any) -> Response | None:
    """A 403 page unless ``form`` carries the admin token."""
    digest: str | None = request.app.state.admin_digest
    if digest is None:
        return message(
            request,
            "Admin actions are off",
            "Set serving.admin_token_sha256 or DRIFTLOOP_ADMIN_TOKEN to allow them.",
            403,
        )
    if not token_matches(str(form.get("token", "")), digest):
        return message(request, "Refused", "The admin token is missing or not valid.", 403)
    return None


def confirm_rollback(request: Request) -> Response:
    name = request.path_params["name"]
    alias = request.query_params.get("alias", "champion")
    registry = _reader(request).registry
    current = registry.alias_version(name, alias)
    try:
        previous: int | None = registry.rollback_target(name, alias)
    except ConflictError:
        previous = None
    context = {"name": name, "alias": alias, "current": current, "previous": previous}
    return render(request, "confirm_rollback.html", context)


async def do_rollback(request: Request) -> Response:
    form = await _form(request)
    refused = _refused(request, form)
    if refused is not None:
        return refused
    name, alias = request.path_params["name"], str(form.get("alias", "champion"))
    who = actor_name(str(form.get("actor", "")))
    why = str(form.get("reason", "")).strip()[:1000] or "rollback from the dashboard"
    registry = _reader(request).registry
    await run_in_threadpool(lambda: registry.rollback(name, alias, who=who, why=why))
    return RedirectResponse(f"{request.scope.get('root_path', '')}/models/{name}", 303)


def _split(request: Request, params: Any) -> dict[str, Any]:
    """The policy the form asks for: its arms' weights (alias -> percent) over the
    current policy's other settings (sticky key, shadow)."""
    name = request.path_params["name"]
    state = _reader(request).traffic.get(name)
    current = dict(state.policy or {}) if state is not None else {}
    arms: dict[str, float] = {}
    for key, value in params.items():
        if key.startswith("arm_") and str(value).strip():
            arms[key.removeprefix("arm_")] = float(str(value))
    policy = {**current, "arms": {a: w for a, w in arms.items() if w > 0}}
    TrafficPolicy.model_validate(policy)
    return policy


def confirm_split(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        policy = _split(request, request.query_params)
    except (ValidationError, ValueError) as exc:
        return message(request, "Not a valid split", _reason(exc), 400)
    state = _reader(request).traffic.get(name)
    context = {
        "name": name,
        "policy": policy,
        "current": state.policy if state is not None else None,
        "fields": {k: v for k, v in request.query_params.items() if k.startswith("arm_")},
    }
    return render(request, "confirm_split.html", context)


async def do_split(request: Request) -> Response:
    form = await _form(request)
    refused = _refused(request, form)
    if refused is not None:
        return refused
    name = request.path_params["name"]
    try:
        policy = _split(request, form)
    except (ValidationError, ValueError) as exc:
        return message(request, "Not a valid split", _reason(exc), 400)
    who = actor_name(str(form.get("actor", "")))
    why = str(form.get("reason", "")).strip()[:1000] or "split changed from the dashboard"
    traffic = _reader(request).traffic
    await run_in_threadpool(lambda: traffic.set(name, policy, who=who, why=why))
    return RedirectResponse(f"{request.scope.get('root_path', '')}/traffic#{name}", 303)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'policy'}: {first['msg']}"
    return str(exc)
