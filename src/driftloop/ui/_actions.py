"""Admin actions: promote a version (move an alias to it), roll an alias back, change a
model's traffic split.

Each is two steps: a GET page that says what will change and asks for the admin token
(the serving admin API's token, checked by the same function) with who is acting and
why; then the POST of that form, which does it and records who. A POST without a valid
token is refused with a 403 page and changes nothing. With API keys (:mod:`._access`)
the logged-in key stands for the token: it needs the ``admin`` scope, its tenant's model,
and the form's CSRF token; it is recorded as ``key:<id>``.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from driftloop.core.config import TrafficPolicy
from driftloop.core.errors import ConflictError, InvalidParameterError
from driftloop.serving import actor_name, token_matches
from driftloop.ui._access import check_model, viewer
from driftloop.ui._forms import read_form
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import message, render

__all__ = [
    "confirm_promote",
    "confirm_rollback",
    "confirm_split",
    "do_promote",
    "do_rollback",
    "do_split",
]


def _actor(request: Request, form: Any) -> str:
    """Who acts, as recorded: the name given (else ``admin``); with API keys, the key's
    id (``key:<id>``), after the name given if any."""
    key_id = viewer(request).key_id
    if key_id is None:
        return actor_name(str(form.get("actor", "")))
    name = actor_name(str(form.get("actor", "")), default="")
    return f"{name} key:{key_id}" if name else f"key:{key_id}"


def _reader(request: Request) -> ProjectReader:
    reader: ProjectReader = request.app.state.reader
    return reader


def _visible(request: Request) -> None:
    """Not found unless the viewer may see the model of the path (its tenant's)."""
    check_model(request, _reader(request), request.path_params["name"])


def _refused(request: Request, form: Any) -> Response | None:
    """A 403 page unless ``form`` carries the admin token or, with API keys, the viewer's
    key has the admin scope and the form its CSRF token."""
    who = viewer(request)
    if who.key_id is not None:
        if not who.admin:
            text = f"API key '{who.key_id}' lacks the admin scope (it has {', '.join(who.scopes)})."
            return message(request, "Refused", text, 403)
        if not hmac.compare_digest(str(form.get("csrf", "")), who.csrf):
            return message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        return None
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
    _visible(request)
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
    form = await read_form(request)
    await run_in_threadpool(_visible, request)
    refused = _refused(request, form)
    if refused is not None:
        return refused
    name, alias = request.path_params["name"], str(form.get("alias", "champion"))
    who = _actor(request, form)
    why = str(form.get("reason", "")).strip()[:1000] or "rollback from the dashboard"
    registry = _reader(request).registry
    await run_in_threadpool(lambda: registry.rollback(name, alias, who=who, why=why))
    return RedirectResponse(f"{request.scope.get('root_path', '')}/models/{name}", 303)


def _failed_gates(reader: ProjectReader, name: str, version: int) -> list[str]:
    """The release gates ``version`` failed (promoting it then needs ``force``, as
    ``driftloop models promote --force`` does)."""
    report = reader.registry.get(name, version).gate_report or {}
    return [str(c.get("name")) for c in report.get("checks", []) if not c.get("passed")]


def _promotion(request: Request, params: Any) -> tuple[str, str, int]:
    """The model, alias and version a promotion asks for (alias default ``champion``,
    version default the challenger's)."""
    name = request.path_params["name"]
    alias = str(params.get("alias") or "champion")
    asked = str(params.get("version") or "").strip()
    if asked:
        if not asked.isdigit():
            raise InvalidParameterError(f"Version must be a whole number; got {asked!r}.")
        return name, alias, int(asked)
    return name, alias, _reader(request).registry.alias_version(name, "challenger")


def confirm_promote(request: Request) -> Response:
    _visible(request)
    name, alias, version = _promotion(request, request.query_params)
    reader = _reader(request)
    reader.registry.get(name, version)  # an unknown version is named as such
    aliases = reader.registry.aliases(name)
    context = {
        "name": name,
        "alias": alias,
        "version": version,
        "current": aliases.get(alias),
        "failed": _failed_gates(reader, name, version),
    }
    return render(request, "confirm_promote.html", context)


async def do_promote(request: Request) -> Response:
    form = await read_form(request)
    await run_in_threadpool(_visible, request)
    refused = _refused(request, form)
    if refused is not None:
        return refused
    name, alias, version = _promotion(request, form)
    reader = _reader(request)
    failed = await run_in_threadpool(lambda: _failed_gates(reader, name, version))
    why = str(form.get("reason", "")).strip()[:1000] or "promoted from the dashboard"
    if failed and form.get("force") != "yes":
        return message(
            request,
            "Not promoted",
            f"{name} version {version} failed its release gates ({', '.join(failed)}); "
            "promoting it needs the 'promote anyway' box ticked and a reason.",
            409,
        )
    if failed:
        why = f"forced past failed gates ({', '.join(failed)}): {why}"
    who = _actor(request, form)
    registry = reader.registry
    await run_in_threadpool(lambda: registry.set_alias(name, alias, version, who=who, why=why))
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
    _visible(request)
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
    form = await read_form(request)
    await run_in_threadpool(_visible, request)
    refused = _refused(request, form)
    if refused is not None:
        return refused
    name = request.path_params["name"]
    try:
        policy = _split(request, form)
    except (ValidationError, ValueError) as exc:
        return message(request, "Not a valid split", _reason(exc), 400)
    who = _actor(request, form)
    why = str(form.get("reason", "")).strip()[:1000] or "split changed from the dashboard"
    traffic = _reader(request).traffic
    await run_in_threadpool(lambda: traffic.set(name, policy, who=who, why=why))
    return RedirectResponse(f"{request.scope.get('root_path', '')}/traffic#{name}", 303)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'policy'}: {first['msg']}"
    return str(exc)
