"""The admin API: a model's traffic policy, read and changed at run time.

Every call needs the admin token (``Authorization: Bearer <token>``). The server holds
only the token's SHA-256 and compares digests in constant time. A change is validated
(weights, and every alias or version it names must load), stored with who made it
(``X-Driftloop-Actor``, else ``admin``) in the traffic store that every worker polls,
and applied here at once; requests in flight finish on the version they started on.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from driftloop.core.config import TrafficPolicy
from driftloop.serving._auth import actor_of, check_bearer, token_digest
from driftloop.serving._errors import HttpError, json_response
from driftloop.serving._recommend_arms import RecommenderArms
from driftloop.serving._recommend_service import RecommenderService
from driftloop.serving._server import Server, read_body
from driftloop.serving._service import Service
from driftloop.serving._validation import parse_body

__all__ = ["describe", "get_traffic", "put_traffic", "token_digest"]

_PUT_FIELDS = frozenset({"arms", "sticky_key", "shadow", "shadow_sample", "reason", "clear"})


def _authorize(request: Request, server: Server) -> str:
    """The actor making an admin call; 401 without a token, 403 with a wrong one. With
    API keys (checked at the door, scope ``admin``), the key's id: ``key:<id>``."""
    key = getattr(request.state, "key", None)
    if server.gate is not None:
        if key is None:
            raise HttpError("unauthorized", "The admin API needs 'Authorization: Bearer <key>'.")
        return f"key:{key.id}"
    expected = server.admin_digest
    if expected is None:
        raise HttpError(
            "forbidden",
            "The admin API is off: set serving.admin_token_sha256 or DRIFTLOOP_ADMIN_TOKEN.",
        )
    check_bearer(request, (expected,), "The admin API")
    return actor_of(request, "admin")


def _service(request: Request, server: Server) -> Service:
    return server.service(request.path_params["name"])


def _recommender(request: Request, server: Server) -> RecommenderArms | None:
    """The arms of the path's recommender, when it names one (and no tabular model)."""
    name = request.path_params["name"]
    recs = getattr(request.app.state, "recommenders", None)
    if name in server.by_name or recs is None:
        return None
    service: RecommenderService | None = recs.by_name.get(name)
    return None if service is None else service.arms


async def get_traffic(request: Request, server: Server) -> Response:
    _authorize(request, server)
    rec = _recommender(request, server)
    if rec is not None:
        return json_response(rec.describe())
    return json_response(describe(_service(request, server)))


async def put_traffic(request: Request, server: Server) -> Response:
    actor = _authorize(request, server)
    rec = _recommender(request, server)
    service = _service(request, server) if rec is None else None
    policy, reason = _policy_of(await read_body(request, server.settings.max_body_bytes))
    if rec is not None:  # a recommender: the same policy, its versions loaded whole
        served = rec.served
        await rec.preload(policy if policy is not None else served.traffic)
        state = await server.store_policy(
            served.name, served.traffic, rec.traffic.revision, policy, actor, reason
        )
        await rec.apply(state)
        return json_response(rec.describe())
    assert service is not None
    await service.preload(policy if policy is not None else service.served.traffic)
    state = await server.store_traffic(service, policy, actor, reason)
    await service.apply(state)
    return json_response(describe(service))


def _policy_of(raw: bytes) -> tuple[TrafficPolicy | None, str]:
    """The policy a PUT body sets (None: ``clear``, back to the settings file) and why."""
    body = parse_body(raw)
    if not isinstance(body, dict):
        raise _bad(None, "the body must be a JSON object")
    unknown = sorted(set(body) - _PUT_FIELDS)
    if unknown:
        raise _bad(unknown[0], f"unknown field; known: {', '.join(sorted(_PUT_FIELDS))}")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 1_000:
        raise _bad("reason", "must be a string of at most 1000 characters")
    if body.get("clear") is True:
        if set(body) - {"clear", "reason"}:
            raise _bad("clear", "goes alone (with a reason): it returns to the settings file")
        return None, reason
    try:
        given = {k: v for k, v in body.items() if k != "reason" and v is not None}
        return TrafficPolicy.model_validate(given), reason
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise _bad(where, str(first["msg"])) from None


def describe(service: Service) -> dict[str, Any]:
    """The policy a model routes by now: arms with their versions, weights (percent),
    breaker states and failed or refused calls (this process's), the shadow, and where
    the policy came from."""
    state, router = service.traffic, service.router
    arms = service.arms_now()
    shadow = service.deployments.get(router.shadow) if router.shadow is not None else None
    return {
        "model": service.served.as_name or service.served.name,
        "alias": service.served.alias,
        "source": state.source,
        "revision": state.revision,
        "changed_by": state.changed_by,
        "changed_at": state.changed_at,
        "reason": state.reason,
        "arms": arms,
        "sticky_key": router.sticky_key,
        "shadow": router.shadow,
        "shadow_version": shadow.model.version if shadow is not None else None,
        "shadow_sample": router.shadow_sample if router.shadow is not None else None,
    }


def _bad(field: str | None, rule: str) -> HttpError:
    return HttpError(
        "invalid-parameter",
        f"field '{field}' {rule}." if field else f"{rule[0].upper()}{rule[1:]}.",
        [{"field": field, "rule": rule}],
    )
