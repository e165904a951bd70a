"""``create_ui``: the dashboard as a Starlette app, built only from its arguments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from driftloop.core.config import Settings
from driftloop.core.errors import (
    AliasNotFoundError,
    ConflictError,
    DriftloopError,
    InvalidParameterError,
    NotFoundError,
)
from driftloop.registry import KeyStore, TrafficStore
from driftloop.serving import WorkerBoard
from driftloop.ui import _access, _actions, _pages
from driftloop.ui._drift import drift
from driftloop.ui._loop import loop
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import message

__all__ = ["create_ui", "standalone_ui"]


def _error(request: Request, exc: Exception) -> Response:
    """Errors a user can cause or fix, as pages (status by kind); others propagate."""
    assert isinstance(exc, DriftloopError)
    if isinstance(exc, NotFoundError | AliasNotFoundError):
        return message(request, "Not found", str(exc), 404)
    if isinstance(exc, ConflictError):
        return message(request, "Not possible now", str(exc), 409)
    if isinstance(exc, InvalidParameterError):
        return message(request, "Not valid", str(exc), 400)
    return message(request, "Error", str(exc), 500)


def create_ui(
    settings: Settings,
    *,
    admin_digest: str | None = None,
    traffic: TrafficStore | None = None,
    reader: ProjectReader | None = None,
    keys: KeyStore | None = None,
    board: WorkerBoard | None = None,
) -> Starlette:
    """The dashboard of the project at ``settings``, to mount (``Mount("/ui", app)``).

    ``admin_digest`` is the admin token's SHA-256 (default
    ``settings.serving.admin_token_sha256``; None: admin actions are refused);
    ``traffic`` the store of run-time traffic policies (default the registry's).
    ``keys``: the dashboard is behind a login with API keys of that store, each seeing
    its tenant's models (:mod:`._access`); the admin token then plays no part.
    ``board`` is where the project's server processes tell their arms' breaker states
    (default the project's, ``.driftloop/workers/``, which ``driftloop serve`` writes).
    The parts are opened on first use and closed when the app shuts down (a mounted app
    is not told: call ``app.state.reader.close()`` from the parent's shutdown).
    """
    reader = reader or ProjectReader(settings, traffic=traffic)
    routes = [
        Route("/", _pages.overview, name="overview"),
        Route("/models", _pages.models, name="models"),
        Route("/models/{name}", _pages.model, name="model"),
        Route("/models/{name}/v/{version:int}", _pages.version, name="version"),
        Route("/models/{name}/rollback", _actions.confirm_rollback, methods=["GET"]),
        Route("/models/{name}/rollback", _actions.do_rollback, methods=["POST"]),
        Route("/models/{name}/promote", _actions.confirm_promote, methods=["GET"]),
        Route("/models/{name}/promote", _actions.do_promote, methods=["POST"]),
        Route("/drift/{name}", drift, name="drift"),
        Route("/loop/{name}", loop, name="loop"),
        Route("/features", _pages.features, name="features"),
        Route("/predictions", _pages.predictions, name="predictions"),
        Route("/traffic", _pages.traffic, name="traffic"),
        Route("/traffic/{name}/split", _actions.confirm_split, methods=["GET"]),
        Route("/traffic/{name}/split", _actions.do_split, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            reader.close()

    middleware = []
    if keys is not None:
        routes += [
            Route("/login", _access.login_form, methods=["GET"]),
            Route("/login", _access.login, methods=["POST"]),
            Route("/logout", _access.logout, methods=["POST"]),
        ]
        middleware.append(Middleware(_access.KeyDoor, keys=keys))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={DriftloopError: _error},
        lifespan=lifespan,
    )
    app.state.reader = reader
    app.state.keys = keys
    app.state.board = board or WorkerBoard.of_project(settings)
    app.state.admin_digest = admin_digest or settings.serving.admin_token_sha256
    return app


def standalone_ui(settings: Settings, *, admin_digest: str | None = None) -> Starlette:
    """The dashboard alone, at ``/ui`` as under ``driftloop serve`` (``/`` leads there);
    with ``serving.auth = "keys"``, behind a login with the registry's API keys."""
    reader = ProjectReader(settings)
    keys = reader.registry.keys if settings.serving.auth == "keys" else None
    ui = create_ui(settings, admin_digest=admin_digest, reader=reader, keys=keys)

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ui.state.reader.close()

    return Starlette(routes=[Route("/", home), Mount("/ui", app=ui)], lifespan=lifespan)
