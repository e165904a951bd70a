"""``driftloop serve``: the model server on uvicorn, with one or several workers.

Workers are separate processes that build the app themselves (``build_app``) from the
environment this command prepares: the settings file, the models folder, the models to
serve, the prometheus multiprocess folder and one OpenMP / BLAS thread per worker (the
thread trap in BENCHMARKING.md).
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import typer
from starlette.applications import Starlette

from driftloop.audit import open_audit_log, open_retained, retain_forever
from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.cli._serve_recsys import split_recommenders
from driftloop.core.config import ModelConfig, Settings, load_settings
from driftloop.core.errors import InvalidParameterError, ModelNotFoundError
from driftloop.features import FeatureStore, load_definitions
from driftloop.loop import LoopController
from driftloop.registry import KeyStore, Registry, TrafficStore
from driftloop.serving import (
    DirectoryModelSource,
    FeatureStoreSource,
    GuardedHttpProtocol,
    ModelSource,
    RegistryModelSource,
    ServedModel,
    ServedRecommender,
    WorkerBoard,
    create_app,
    token_digest,
)
from driftloop.ui import create_ui

__all__ = ["build_app", "check_served", "parse_served", "serve"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_served(
    specs: list[str], entity_keys: tuple[str, ...] = (), settings: Settings | None = None
) -> list[ServedModel]:
    """``name``, ``name@alias`` or ``public=name@alias`` into served models, each with its
    ``[models.<name>]`` policies (entity keys besides ``entity_keys``, decisions, missing
    values, fallback) and its ``[serving.traffic.<name>]`` policy."""
    served: list[ServedModel] = []
    for spec in specs:
        public, _, target = spec.rpartition("=")
        name, _, alias = target.partition("@")
        if not name:
            raise InvalidParameterError(f"--model {spec!r}: expected name[@alias].")
        config = settings.model(name) if settings is not None else ModelConfig()
        traffic = settings.serving.traffic.get(public or name) if settings is not None else None
        served.append(
            ServedModel(
                name,
                alias or "champion",
                tuple(dict.fromkeys((*config.entity_keys, *entity_keys))),
                as_name=public or None,
                decision=config.decision,
                missing=config.missing,
                fallback=config.fallback,
                traffic=traffic,
            )
        )
    return served


def build_app(environ: Mapping[str, str] | None = None) -> Starlette:
    """The app of one worker, from the variables ``serve`` set (uvicorn factory).

    Models come from ``DRIFTLOOP_SERVE_MODELS_DIR`` when set, else from the project's
    registry (API keys, with ``serving.auth = "keys"``, from the same database); with
    entity keys, instances are enriched from the project's feature store
    (definitions in ``features.py``).
    """
    env = os.environ if environ is None else environ
    settings = load_settings(environ=env)
    names = [n for n in env.get("DRIFTLOOP_SERVE_MODELS", "").split(",") if n]
    source: ModelSource
    if env.get("DRIFTLOOP_SERVE_MODELS_DIR"):
        models_dir = Path(env["DRIFTLOOP_SERVE_MODELS_DIR"])
        source = DirectoryModelSource(models_dir)
        found = sorted(p.name for p in models_dir.iterdir() if (p / "aliases.json").exists())
        # no registry: run-time traffic policies live in the project's state folder
        traffic = TrafficStore.at("sqlite:///.driftloop/traffic.db", root=settings.root)
        keys = KeyStore(traffic.engine)  # the same registry-schema database
    else:
        registry = Registry.from_settings(settings)
        source = RegistryModelSource(registry)
        found = sorted(str(m["name"]) for m in registry.list_models())
        traffic = registry.traffic
        keys = registry.keys
    entity_keys = tuple(k for k in env.get("DRIFTLOOP_SERVE_ENTITY_KEYS", "").split(",") if k)
    recommenders: list[ServedRecommender] = []
    sessions = None
    if not env.get("DRIFTLOOP_SERVE_MODELS_DIR"):  # recommenders live in the registry
        names, recommenders, sessions = split_recommenders(registry, names or found, settings)
        found = []
    served = parse_served(names or found, entity_keys, settings)
    features = None
    if any(s.entity_keys for s in served):
        definitions = load_definitions(settings.root / "features.py")
        features = FeatureStoreSource(FeatureStore(settings, definitions=definitions))
    audit = None
    if env.get("DRIFTLOOP_SERVE_AUDIT", "1") == "1":
        audit = open_audit_log(settings.audit.url, root=settings.root)
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR")
    digest = token_digest(token) if (token := env.get("DRIFTLOOP_ADMIN_TOKEN")) else None
    board = WorkerBoard.of_project(settings)
    served_app = create_app(
        served,
        source,
        settings=settings.serving,
        audit=audit,
        features=features,
        metrics_dir=Path(metrics_dir) if metrics_dir else None,
        close_audit=True,
        tune_gc=True,
        traffic=traffic,
        admin_digest=digest,
        spool=settings.state_dir() / "audit-spool",
        feedback_digest=token_digest(t) if (t := env.get("DRIFTLOOP_FEEDBACK_TOKEN")) else None,
        keys=keys if settings.serving.auth == "keys" else None,
        board=board,
        recommenders=recommenders,
        sessions=sessions,
    )
    # the dashboard of the same project, with the same admin token (docs/ui.md); with API
    # keys, behind a login, each key seeing its tenant's models; it shows every worker's
    # breaker states from the board they all write
    dashboard = create_ui(
        settings,
        admin_digest=digest,
        traffic=traffic,
        keys=keys if settings.serving.auth == "keys" else None,
        board=board,
    )
    served_app.mount("/ui", dashboard)
    return served_app


def check_served(settings: Settings, specs: list[str]) -> None:
    """Refuse to start when a model to serve cannot be resolved in the registry (after
    start, a broken alias keeps the version being served instead)."""
    registry = Registry.from_settings(settings)
    try:
        known = sorted(str(m["name"]) for m in registry.list_models())
        served = parse_served(specs or known, (), settings)
        if not served:
            raise ModelNotFoundError(
                "The registry has no models yet; train one first (driftloop train MODEL --promote)."
            )
        for one in served:
            if one.name not in known:
                raise ModelNotFoundError(
                    f"Model '{one.name}' is not in the registry. Known: "
                    f"{', '.join(known) or 'none'}."
                )
            registry.alias_version(one.name, one.alias)  # names the aliases it has
    finally:
        registry.close()


@app.command()
def serve(
    models_dir: Path | None = typer.Option(
        None,
        "--models",
        help="Serve from a folder (<name>/<version>.txt, <name>/aliases.json), not the registry.",
    ),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Model to serve: name, name@alias or public=name@alias."
    ),
    entity_key: list[str] = typer.Option(
        [], "--entity-key", "-e", help="Request field to enrich from the feature store."
    ),
    host: str | None = typer.Option(None, help="Address to bind (default serving.host)."),
    port: int | None = typer.Option(None, help="Port (default serving.port)."),
    workers: int | None = typer.Option(None, help="Worker processes (default serving.workers)."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Do not log predictions.", metavar=""),
    loop: bool = typer.Option(
        False, "--loop", help="Also run the loop controller ([loop.<model>]).", metavar=""
    ),
    loop_interval: float = typer.Option(
        30.0, "--loop-interval", help="Seconds between the loop controller's passes.", min=0.1
    ),
    config: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Serve models over HTTP (v1 predict, KServe v2, feedback, metrics)."""
    import uvicorn

    with exit_on_error():
        env = dict(os.environ)
        if config is not None:
            env["DRIFTLOOP_CONFIG"] = str(config.resolve())
        settings = load_settings(environ=env)
        parse_served(model)  # refuse a bad --model before starting workers
        if loop and not settings.loop:
            raise InvalidParameterError(
                "--loop: no model has a loop policy; add a [loop.<model>] section to "
                "driftloop.toml (see docs/loop.md)."
            )
        if models_dir is not None:
            if not models_dir.is_dir():
                raise InvalidParameterError(f"--models {models_dir} is not a folder.")
            env["DRIFTLOOP_SERVE_MODELS_DIR"] = str(models_dir.resolve())
        else:
            check_served(settings, model)
        n_workers = workers or settings.serving.workers
        env["DRIFTLOOP_SERVE_ENTITY_KEYS"] = ",".join(entity_key)
        env["DRIFTLOOP_SERVE_MODELS"] = ",".join(model)
        env["DRIFTLOOP_SERVE_AUDIT"] = "0" if no_audit else "1"
        for var in _THREAD_VARS:
            env[var] = "1"
        metrics_dir = None
        if n_workers > 1:
            metrics_dir = tempfile.mkdtemp(prefix="driftloop-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ.update(env)  # the entry point hands its environment to the workers
        bind_host, bind_port = host or settings.serving.host, port or settings.serving.port
        _raise_fd_limit(settings.serving.max_connections)
        console.print(f"serving on http://{bind_host}:{bind_port} with {n_workers} worker(s)")
        retention = settings.audit.retention
        stop_background = threading.Event()
        controller = _loop_controller(settings, bind_port) if loop else None
        if controller is not None:  # this process leads the loop (one per server)
            threading.Thread(
                target=controller.run,
                args=(loop_interval,),
                kwargs={"stop": stop_background},
                name="loop-controller",
                daemon=True,
            ).start()
        if retention.enabled and not no_audit:  # one pass at a time, in this process only
            threading.Thread(
                target=retain_forever,
                args=(
                    lambda: open_retained(settings.audit.url, settings.root),
                    retention,
                    stop_background,
                ),
                name="audit-retention",
                daemon=True,
            ).start()
        try:
            uvicorn.run(
                "driftloop.cli._serve:build_app",
                factory=True,
                host=bind_host,
                port=bind_port,
                workers=n_workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
                loop="uvloop",
                # httptools with the [serving] head size, deadlines and connection limit
                http=GuardedHttpProtocol,
                access_log=False,
                # nothing reads the client address (no access log), so X-Forwarded-For
                # parsing would only cost a middleware call per request
                proxy_headers=False,
                server_header=False,
                log_level="warning",
            )
        finally:
            stop_background.set()
            if controller is not None:
                controller.close()
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)


# uvicorn's supervisor restarts a worker that does not answer its health ping within this
# many seconds (5 by default): on a loaded machine, workers importing the stack and loading
# models starve, miss the ping and are killed in a loop, so the server never comes up.
WORKER_HEALTHCHECK_TIMEOUT_S = 120

_SPARE_FDS = 256  # files, sockets to the stores, the listening socket, per worker


def _raise_fd_limit(max_connections: int) -> None:
    """Lift the soft open-files limit toward the hard one so ``max_connections`` fit (the
    workers inherit it); say so when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            console.print(
                f"[yellow]open files limit {new} < serving.max_connections + {_SPARE_FDS}: "
                "lower max_connections or raise the limit (ulimit -n)[/yellow]"
            )


def _loop_controller(settings: Settings, port: int) -> LoopController:
    """The loop controller ``serve --loop`` runs beside the server: it acts only through
    the registry's aliases and the traffic policy, never by calling the server."""
    return LoopController.from_settings(
        settings, holder=f"serve:{socket.gethostname()}:{port}:{os.getpid()}"
    )
