"""``create_app``: the ASGI app, built only from its arguments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from driftloop.audit import AuditLog
from driftloop.core.config import ServingConfig
from driftloop.core.errors import ConfigError
from driftloop.features import OnlineStore
from driftloop.registry import KeyStore, TrafficStore
from driftloop.serving import _admin, _v1, _v2
from driftloop.serving._board import WorkerBoard
from driftloop.serving._errors import INTERNAL, HttpError, error_response, json_response
from driftloop.serving._fastpath import ServingApp
from driftloop.serving._features import FeatureSource
from driftloop.serving._feedback import feedback_caller
from driftloop.serving._idempotency import idempotent
from driftloop.serving._keys import DEFAULT_TENANT, KeyGate
from driftloop.serving._metrics import only_models
from driftloop.serving._model import ModelSource
from driftloop.serving._openapi import openapi
from driftloop.serving._ratelimit import RedisCounters
from driftloop.serving._recommend import Recommenders
from driftloop.serving._recommend_arms import ServedRecommender
from driftloop.serving._scored import ServedModel
from driftloop.serving._server import Handler, Server, endpoint

__all__ = ["create_app"]

_UNROUTED = "unrouted"  # the metrics label of answers given outside every endpoint


def create_app(
    models: Sequence[ServedModel],
    source: ModelSource,
    *,
    settings: ServingConfig | None = None,
    audit: AuditLog | None = None,
    features: FeatureSource | None = None,
    metrics_dir: Path | None = None,
    refresh_s: float = 1.0,
    close_audit: bool = False,
    tune_gc: bool = False,
    traffic: TrafficStore | None = None,
    admin_digest: str | None = None,
    spool: Path | None = None,
    feedback_digest: str | None = None,
    keys: KeyStore | None = None,
    board: WorkerBoard | None = None,
    recommenders: Sequence[ServedRecommender] = (),
    sessions: OnlineStore | None = None,
) -> Starlette:
    """The model server for ``models`` loaded from ``source``.

    Every prediction is written to ``audit`` (durably, before its response) when given.
    ``features`` enriches instances carrying entity keys. ``metrics_dir`` is the
    prometheus multiprocess folder when several workers run. Aliases are followed every
    ``refresh_s`` seconds (0: only at start). ``close_audit`` closes ``audit`` at
    shutdown (when the app owns it). ``tune_gc`` freezes the objects alive after loading,
    makes young collections rarer and shortens the GIL switch interval so the audit writer
    thread is not kept waiting by the event loop (process-wide: for a process that only
    serves). ``traffic`` holds the run-time traffic policies every worker follows (None:
    a change applies to this process only); ``admin_digest`` is the admin token's SHA-256
    (default ``settings.admin_token_sha256``); ``spool`` is the folder where audit rows
    wait while the audit store is down (None: a failed commit fails its requests);
    ``feedback_digest`` is the feedback token's SHA-256 (default
    ``settings.feedback_token_sha256``; neither: feedback is open). ``keys`` is the key
    store that ``settings.auth = "keys"`` checks requests against (see :mod:`._keys`).
    ``board`` is where this process tells its arms' breaker states and failed calls, for
    the dashboard of any worker (see :mod:`._board`; None: it does not tell).
    ``recommenders`` are answered at ``POST /v1/models/{name}/recommend``, with the users'
    sessions in the online store ``sessions`` (see :mod:`._recommend_service`).
    """
    settings = settings or ServingConfig()
    admin_digest = admin_digest or settings.admin_token_sha256
    feedback_digest = feedback_digest or settings.feedback_token_sha256
    if settings.auth == "keys" and keys is None:
        raise ConfigError("serving.auth = 'keys' needs a key store (the registry's database).")
    if settings.auth == "token" and admin_digest is None and feedback_digest is None:
        raise ConfigError(
            "serving.auth = 'token' needs a token: set serving.admin_token_sha256 (or "
            "DRIFTLOOP_ADMIN_TOKEN) and serving.feedback_token_sha256 "
            "(or DRIFTLOOP_FEEDBACK_TOKEN)."
        )
    server = Server(
        models,
        source,
        settings=settings,
        audit=audit,
        features=features,
        metrics_dir=metrics_dir,
        refresh_s=refresh_s,
        tune_gc=tune_gc,
        traffic=traffic,
        admin_digest=admin_digest,
        spool=spool,
        feedback_digest=feedback_digest,
        gate=KeyGate(keys, shared=_shared_limits(settings))
        if settings.auth == "keys" and keys is not None
        else None,
        board=board,
    )
    documents: dict[tuple[str | None, ...], bytes] = {}
    recs = Recommenders(recommenders, server, sessions=sessions)

    async def healthz(request: Request, server: Server) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request, server: Server) -> Response:
        return json_response(
            {"ready": server.ready, "degraded": [*server.degraded(), *recs.degraded()]},
            200 if server.ready else 503,
        )

    async def metrics(request: Request, server: Server) -> Response:
        """With API keys, a key of another tenant than ``default`` (the server's operator)
        sees only the series of its tenant's models."""
        if server.writer is not None:
            server.metrics.audit_spooled.set(server.writer.spooled)
        text = server.metrics.exposition()
        key = getattr(request.state, "key", None)
        if key is not None and key.tenant != DEFAULT_TENANT:
            mine = [(p, s) for p, s in server.services.items() if server.tenant_of(s) == key.tenant]
            text = only_models(text, {n for p, s in mine for n in (p, s.served.name)})
        return Response(text, media_type="text/plain; version=0.0.4")

    async def openapi_json(request: Request, server: Server) -> Response:
        """Built from the versions served now (each model's inputs typed), kept per set;
        with API keys, of the key's tenant's models only."""
        services = _v1.visible(request, server)
        key = getattr(request.state, "key", None)
        shown_recs = sorted(
            n for n, r in recs.by_name.items() if key is None or r.tenant == key.tenant
        )
        served = (
            *(f"{p}={s.current.model.version if s.current else None}" for p, s in services),
            *(f"recommend:{n}" for n in shown_recs),
        )
        if served not in documents:  # every name a model answers to, with its inputs
            shown = {id(s) for _, s in services}
            specs = {
                n: s.current.spec
                for n, s in server.by_name.items()
                if s.current is not None and id(s) in shown
            }
            names = [n for _, s in services for n in s.served.public_names]
            if len(documents) > 64:  # one document per tenant and set of versions
                documents.clear()
            documents[served] = orjson.dumps(
                openapi(names, specs, keys=server.gate is not None, recommenders=shown_recs)
            )
        return Response(documents[served], media_type="application/json")

    def route(
        path: str, name: str, handler: Handler, method: str, scope: str | None, v2: bool = False
    ) -> Route:
        run = endpoint(server, name, handler, v2=v2, scope=scope)
        return Route(path, run, methods=[method])

    read_traffic = endpoint(server, "traffic", _admin.get_traffic, scope="admin")
    set_traffic = endpoint(server, "traffic-set", _admin.put_traffic, scope="admin")

    async def traffic_policy(request: Request) -> Response:
        return await (set_traffic if request.method == "PUT" else read_traffic)(request)

    # The scope an API key needs for each endpoint (None: open, the health probes).
    routes = [
        route("/v1/models", "models", _v1.list_models, "GET", "read"),
        route("/v1/models/{name}/predict", "predict", idempotent(_v1.predict), "POST", "predict"),
        route("/v1/models/{name}/recommend", "recommend", recs.recommend, "POST", "predict"),
        route(
            "/v1/models/{name}/interactions", "interactions", recs.interaction, "POST", "feedback"
        ),
        route(
            "/v1/feedback",
            "feedback",
            idempotent(_v1.feedback, feedback_caller),
            "POST",
            "feedback",
        ),
        Route("/v1/models/{name}/traffic", traffic_policy, methods=["GET", "PUT"]),  # one Allow
        route("/v2", "v2-server", _v2.server_metadata, "GET", "read", True),
        route("/v2/health/live", "v2-live", _v2.live, "GET", None, True),
        route("/v2/health/ready", "v2-ready", _v2.ready, "GET", None, True),
        route("/v2/models/{name}", "v2-model", _v2.model_metadata, "GET", "read", True),
        route("/v2/models/{name}/ready", "v2-model-ready", _v2.model_ready, "GET", "read", True),
        route("/v2/models/{name}/infer", "infer", idempotent(_v2.infer), "POST", "predict", True),
        route("/metrics", "metrics", metrics, "GET", "admin"),
        route("/healthz", "healthz", healthz, "GET", None),
        route("/readyz", "readyz", readyz, "GET", None),
        route("/openapi.json", "openapi", openapi_json, "GET", "read"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        await recs.start()
        try:
            yield
        finally:
            await recs.stop()
            await server.stop()
            if close_audit and audit is not None:
                audit.close()

    async def unrouted(request: Request, exc: Exception) -> Response:
        """No route (404) or not its method (405): a JSON error, counted."""
        status = getattr(exc, "status_code", 404)
        if status == 405:
            error = HttpError("method-not-allowed", f"{request.method} is not allowed here.")
        else:
            error = HttpError("not-found", "No such endpoint; GET /openapi.json lists them.")
        server.count(_UNROUTED, error.status)
        response = error_response(error)
        response.headers.update(getattr(exc, "headers", None) or {})  # 405's Allow
        return response

    async def failed(request: Request, exc: Exception) -> Response:
        """Outside every handler (they answer their own failures): 500, counted, logged."""
        server.errors.report(_UNROUTED, exc)
        server.count(_UNROUTED, 500)
        return error_response(INTERNAL)

    handlers = {404: unrouted, 405: unrouted, Exception: failed}
    app = ServingApp(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.server = server
    app.state.server = server
    app.state.recommenders = recs
    return app


def _shared_limits(settings: ServingConfig) -> RedisCounters | None:
    """The Redis every process keeps buckets and daily counts in (None: see _ratelimit)."""
    url = settings.rate_limit_store
    return None if url is None else RedisCounters(url)
