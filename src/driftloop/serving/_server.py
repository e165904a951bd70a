"""The state one server process holds: its models, audit writer and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from driftloop.audit import AuditLog, GroupCommitWriter
from driftloop.core.config import ServingConfig
from driftloop.core.errors import DriftloopError
from driftloop.serving._errors import HttpError, error_response
from driftloop.serving._features import FeatureSource
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._service import ServedModel, Service

__all__ = ["Handler", "Server", "endpoint", "read_body", "receive_body"]

log = logging.getLogger(__name__)


class Server:
    """Holds every :class:`Service` by its public names and runs the alias refresher."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        source: ModelSource,
        *,
        settings: ServingConfig,
        audit: AuditLog | None,
        features: FeatureSource | None,
        metrics_dir: Path | None,
        refresh_s: float,
        tune_gc: bool = False,
    ) -> None:
        self.tune_gc = tune_gc
        self.settings = settings
        self.audit = audit
        self.metrics = ServingMetrics(metrics_dir)
        self.writer: GroupCommitWriter | None = None
        self.refresh_s = refresh_s
        self._features = features
        self._source = source
        self._models = list(models)
        self.services: dict[str, Service] = {}
        self.by_name: dict[str, Service] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._counters: dict[tuple[str, int], Callable[[], None]] = {}
        self._latencies: dict[str, Callable[[float], None]] = {}

    def _build(self) -> None:
        batching = self.settings.batching
        for served in self._models:
            service = Service(
                served,
                self._source,
                features=self._features,
                writer=self.writer,
                metrics=self.metrics,
                cache=self.settings.cache,
                max_rows=batching.max_batch_size,
                max_wait_s=batching.max_wait_ms / 1000.0,
            )
            for public in served.public_names:
                if public in self.by_name:
                    raise DriftloopError(f"Two served models are both reachable as '{public}'.")
                self.by_name[public] = service
            self.services[served.as_name or served.name] = service

    async def start(self) -> None:
        if self.audit is not None:
            self.writer = GroupCommitWriter(self.audit)
        self._build()
        await self.refresh_all()
        if self.tune_gc:
            # Long-lived objects (models, modules) leave the collector's view, and young
            # collections run less often: full collections over them were the p99 tail.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
            # The audit writer thread needs the GIL between SQLite calls while the event
            # loop, busy under load, holds it: after 5 ms (the default) each group commit
            # waited; 0.5 ms gave higher rps and a lower p99 with one worker on one core.
            sys.setswitchinterval(0.0005)
        if self.refresh_s > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)

    async def refresh_all(self) -> None:
        """Follow every alias once; a failure keeps the version being served."""
        for service in self.services.values():
            try:
                await service.refresh()
            except Exception as exc:
                log.warning("Could not refresh model %s: %s", service.served.name, exc)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh_all()

    @property
    def ready(self) -> bool:
        return all(s.current is not None for s in self.services.values())

    def service(self, name: str) -> Service:
        service = self.by_name.get(name)
        if service is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise HttpError("model-not-found", f"Model '{name}' is not served. Served: {known}.")
        if service.current is None:
            raise HttpError("not-ready", f"Model '{name}' is not loaded yet.")
        return service

    def observe(self, endpoint: str, seconds: float) -> None:
        """Record one request's latency (the labelled child is looked up once)."""
        observe = self._latencies.get(endpoint)
        if observe is None:
            observe = self._latencies[endpoint] = self.metrics.latency.labels(endpoint).observe
        observe(seconds)

    def count(self, endpoint: str, status: int) -> None:
        counter = self._counters.get((endpoint, status))
        if counter is None:
            counter = self.metrics.requests.labels(endpoint, str(status)).inc
            self._counters[endpoint, status] = counter
        counter()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (before reading, when declared)."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The ASGI request body (without ``Request.stream``'s generator), 413 past ``limit``."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise HttpError(
                    "body-too-large",
                    f"The body has {int(value)} bytes; the limit is {limit} "
                    "(serving.max_body_bytes).",
                )
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(
                "body-too-large",
                f"The body exceeds the limit of {limit} bytes (serving.max_body_bytes).",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Handler = Callable[[Request, Server], Awaitable[Response]]


def endpoint(
    server: Server, name: str, handler: Handler, *, v2: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: refusals become 4xx JSON, a driftloop error its mapped status."""

    async def run(request: Request) -> Response:
        try:
            response = await handler(request, server)
        except HttpError as exc:
            response = error_response(exc, v2=v2)
        except DriftloopError as exc:
            response = error_response(HttpError.from_error(exc), v2=v2)
        server.count(name, response.status_code)
        return response

    return run
