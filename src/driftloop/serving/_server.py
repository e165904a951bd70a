"""The state one server process holds: its models, audit writer and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from driftloop.audit import AuditLog, GroupCommitWriter, idempotency_store, label_store
from driftloop.core.config import ServingConfig, TrafficPolicy
from driftloop.core.errors import DriftloopError
from driftloop.registry import ApiKey, TrafficState, TrafficStore
from driftloop.serving._board import WorkerBoard
from driftloop.serving._breaker import STATES, CircuitBreaker
from driftloop.serving._error_log import ErrorLog
from driftloop.serving._errors import INTERNAL, HttpError, error_response, shown
from driftloop.serving._features import FeatureSource
from driftloop.serving._keys import KeyGate
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._scored import ServedModel
from driftloop.serving._service import Service
from driftloop.serving._traffic import (
    ActivePolicy,
    active_policy,
    poll_policies,
    refresh_services,
    sync_policies,
)

__all__ = ["Handler", "Server", "endpoint", "read_body", "receive_body"]

log = logging.getLogger(__name__)

_FLUSH_S = 1.0  # per-request metrics counted in bulk reach the shared files within this
_FEATURES_CHECK_S = 5.0  # how often the online store is asked whether it still holds rows
_AUDIT_COUNT_S = 1.0  # how often a tenant's audit rows are counted (its storage quota)
_BOARD_CHECK_S = 0.25  # a breaker's change reaches the worker board within about this
_BOARD_REFRESH_S = 2.0  # and an unchanged report is rewritten this often (not stale)


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
        traffic: TrafficStore | None = None,
        admin_digest: str | None = None,
        spool: Path | None = None,
        feedback_digest: str | None = None,
        gate: KeyGate | None = None,
        board: WorkerBoard | None = None,
    ) -> None:
        self.tune_gc = tune_gc
        self.board = board  # where this process tells its arms' states (None: nowhere)
        self._publisher: asyncio.Task[None] | None = None
        self.gate = gate  # API keys (serving.auth = "keys"), else None
        self.traffic = traffic
        self.admin_digest = admin_digest or settings.admin_token_sha256
        self.feedback_digest = feedback_digest or settings.feedback_token_sha256
        self.labels = label_store(audit)  # labels with relabels refused unless asked
        self.keys = idempotency_store(audit)  # answers kept per Idempotency-Key
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests set it
        self.spool = spool
        self._traffic_seen = -1
        self.feature_breaker: CircuitBreaker | None = None
        self._poller: asyncio.Task[None] | None = None
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
        self._flusher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._key_poller: asyncio.Task[None] | None = None
        self.feature_problem: str | None = None  # the online store's, as last checked
        self._counters: dict[tuple[str, int], Callable[[], None]] = {}
        self._latencies: dict[str, Callable[[float], None]] = {}
        self.errors = ErrorLog(log)
        self._audit_rows: dict[str, tuple[float, int]] = {}  # tenant -> (read at, rows)

    def _build(self) -> None:
        batching = self.settings.batching
        gauge = self.metrics.feature_breaker_state
        gauge.set(0)
        self.feature_breaker = feature_breaker = CircuitBreaker(
            self.settings.breaker, on_change=lambda state: gauge.set(STATES[state])
        )
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
                breaker=self.settings.breaker,
                feature_breaker=feature_breaker,
                feature_timeout_s=self.settings.feature_timeout_ms / 1000.0,
                shadow_queue=self.settings.shadow_queue,
            )
            service.tenant_of = functools.partial(self.tenant_of, service)
            for public in served.public_names:
                if public in self.by_name:
                    raise DriftloopError(f"Two served models are both reachable as '{public}'.")
                self.by_name[public] = service
            self.services[served.as_name or served.name] = service

    async def start(self) -> None:
        if self.audit is not None:
            self.writer = GroupCommitWriter(
                self.audit, spool=self.spool, commit_timeout_s=self.settings.audit_timeout_s
            )
        self._build()
        if self.gate is not None:
            await self.refresh_keys()
            self._key_poller = asyncio.get_running_loop().create_task(self._poll_keys())
        await self.refresh_all()
        if self.traffic is not None:
            try:
                await self.sync_traffic()
            except Exception as exc:  # the settings file's policies, until the store answers
                log.warning("Could not read traffic policies: %s", exc)
            self._poller = asyncio.get_running_loop().create_task(self._poll_traffic())
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
        if self._features is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_features())
        if self.metrics.multiprocess_dir is not None:  # another worker may answer a scrape
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        if self.board is not None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def stop(self) -> None:
        tasks = (self._refresher, self._poller, self._flusher, self._watcher, self._key_poller)
        for task in (*tasks, self._publisher):
            if task is not None:
                await stopped(task)
        if self.board is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.board.remove)
        self.metrics.flush()
        for service in self.services.values():
            await service.close()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)

    async def refresh_all(self) -> None:
        """Follow every alias once; a failure keeps the version being served."""
        sync = self.sync_traffic if self.traffic is not None else None
        await refresh_services(self.services, sync, "model")

    async def check_features(self) -> None:
        """Ask the online store whether it can serve (off the event loop, bounded)."""
        assert self._features is not None
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the check ends, and the server's stop then
            # waits for this watcher forever
            async with asyncio.timeout(_FEATURES_CHECK_S):
                problem = await asyncio.to_thread(self._features.problem)
        except Exception as exc:  # the breaker reports an outage; this only logs it
            log.debug("Online feature store check failed: %s", exc)
            problem = "unreachable"
        if problem != self.feature_problem and problem is not None:
            log.warning("Online feature store %s.", problem)
        self.feature_problem = problem
        self.metrics.feature_store_empty.set(
            0 if problem is None or problem == "unreachable" else 1
        )

    async def _watch_features(self) -> None:
        while True:
            await self.check_features()
            await asyncio.sleep(_FEATURES_CHECK_S)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            self.metrics.flush()

    def arms_now(self) -> dict[str, list[dict[str, Any]]]:
        """Every served model's arms as routed now, by each name it answers to."""
        return {
            public: service.arms_now()
            for public, service in self.by_name.items()
            if service.current is not None
        }

    async def _publish_forever(self) -> None:
        """Tell the worker board this process's arms when they change, and every
        ``_BOARD_REFRESH_S`` anyway (a report that stops coming shows the worker stale)."""
        assert self.board is not None
        board = self.board
        told: dict[str, list[dict[str, Any]]] | None = None
        told_at = -math.inf
        with contextlib.suppress(OSError):
            await asyncio.to_thread(board.forget_old)
        while True:
            now = self.arms_now()
            if now != told or time.monotonic() - told_at >= _BOARD_REFRESH_S:
                try:
                    await asyncio.to_thread(board.publish, now)
                    told, told_at = now, time.monotonic()
                except OSError as exc:  # a full disk must not stop serving
                    log.warning("Could not publish to the worker board: %s", exc)
            await asyncio.sleep(_BOARD_CHECK_S)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh_all()

    # -- API keys -----------------------------------------------------------------------
    async def refresh_keys(self) -> None:
        """Re-read the keys (off the event loop); a failure keeps the keys last read."""
        assert self.gate is not None
        try:
            await asyncio.to_thread(self.gate.refresh)
        except Exception as exc:
            log.warning("Could not read API keys: %s", exc)

    async def _poll_keys(self) -> None:
        while True:
            await asyncio.sleep(self.settings.key_refresh_s)
            await self.refresh_keys()

    async def admit(self, key: ApiKey, scope: str) -> None:
        """After the door (:meth:`KeyGate.authorize`): the key's shared rate, its
        tenant's daily quota and, for a prediction, its tenant's audit storage (507)."""
        assert self.gate is not None
        if self.gate.limited(key):
            await self.gate.admit(key)
        if scope == "predict":
            await self.check_audit_room(key.tenant)

    async def check_audit_room(self, tenant: str) -> None:
        """507 when ``tenant``'s predictions fill its audit storage quota. The count is
        read from the audit store (shared by every process) at most every
        ``_AUDIT_COUNT_S``: a tenant may pass its quota by the rows of that long."""
        snapshot = self.gate.snapshot if self.gate is not None else None
        limit = snapshot.audit_quotas.get(tenant) if snapshot is not None else None
        count_rows = getattr(self.audit, "hot_rows", None)
        if limit is None or count_rows is None:
            return
        now = time.monotonic()
        seen = self._audit_rows.get(tenant)
        if seen is None or now - seen[0] > _AUDIT_COUNT_S:
            try:
                rows = int(await asyncio.to_thread(count_rows, tenant))
            except Exception as exc:  # the writer reports an outage; keep the last count
                log.warning("Could not count tenant %s's audit rows: %s", tenant, exc)
                rows = seen[1] if seen is not None else 0
            seen = self._audit_rows[tenant] = (now, rows)
        if seen[1] >= limit:
            raise HttpError(
                "audit-quota-exceeded",
                f"Tenant '{tenant}' holds {seen[1]} audit records; its audit storage quota "
                f"(max_audit_rows) is {limit}. Compact or raise the quota.",
                [{"field": "max_audit_rows", "rule": f"at most {limit} audit records"}],
            )

    def tenant_of(self, service: Service) -> str:
        """The tenant a served model belongs to: as served, else as registered."""
        if service.served.tenant is not None:
            return service.served.tenant
        return self.gate.tenant_of(service.served.name) if self.gate is not None else "default"

    def check_owner(self, name: str, key: ApiKey) -> None:
        """404 unless the model of a path (a served model, or another kind such as a
        recommender: by its registered tenant) is ``key``'s tenant's."""
        if name in self.by_name:
            self.owned(name, key)
            return
        tenant = self.gate.tenant_of(name) if self.gate is not None else "default"
        if tenant != key.tenant:
            raise HttpError("model-not-found", f"Model '{shown(name)}' is not served.")

    def owned(self, name: str, key: ApiKey) -> Service:
        """The model served as ``name`` if it is ``key``'s tenant's; else 404, as for a
        model that does not exist (other tenants' names do not leak)."""
        service = self.by_name.get(name)
        if service is None or self.tenant_of(service) != key.tenant:
            raise HttpError("model-not-found", f"Model '{shown(name)}' is not served.")
        return self.service(name)

    # -- traffic policies -----------------------------------------------------------
    async def sync_traffic(self) -> None:
        """Route by the stored policies when the store's revision moved."""
        assert self.traffic is not None
        self._traffic_seen = await sync_policies(
            self.traffic, self._traffic_seen, self.services, self._state
        )

    async def _poll_traffic(self) -> None:
        await poll_policies(self.sync_traffic)

    async def store_traffic(
        self, service: Service, policy: TrafficPolicy | None, who: str, why: str
    ) -> ActivePolicy:
        """Record a run-time change (for every worker) and return it as routed here."""
        public = service.served.as_name or service.served.name
        return await self.store_policy(
            public, service.served.traffic, service.traffic.revision, policy, who, why
        )

    async def store_policy(
        self,
        public: str,
        configured: TrafficPolicy | None,
        revision: int,
        policy: TrafficPolicy | None,
        who: str,
        why: str,
    ) -> ActivePolicy:
        """Record a run-time change of the model served as ``public`` (routed by
        ``revision`` now; ``configured``: its settings file's policy) for every worker."""
        dumped = policy.model_dump() if policy is not None else None
        if self.traffic is None:  # one process, nothing shared: a revision of its own
            row = TrafficState(public, dumped, revision + 1, who, datetime.now(UTC), why)
            return active_policy(row, configured)
        try:
            row = await asyncio.to_thread(self.traffic.set, public, dumped, who=who, why=why)
        except DriftloopError:
            raise
        except Exception as exc:  # the registry database is down: nothing was changed
            raise HttpError(
                "unavailable",
                f"The traffic store could not record the change ({type(exc).__name__}).",
            ) from None
        return active_policy(row, configured)

    @staticmethod
    def _state(service: Service, row: TrafficState) -> ActivePolicy:
        return active_policy(row, service.served.traffic)

    def degraded(self) -> list[str]:
        """What is answering in a degraded way now (empty: nothing): the audit store
        (rows spooled to local disk), the online store, or a version's open breaker."""
        out = []
        if self.writer is not None and self.writer.degraded:
            out.append(f"audit store: {self.writer.spooled} row(s) spooled to local disk")
        if self.feature_breaker is not None and self.feature_breaker.state != "closed":
            out.append(f"online feature store: breaker {self.feature_breaker.state}")
        if self.feature_problem is not None:
            out.append(f"online feature store: {self.feature_problem}")
        for public, service in sorted(self.services.items()):
            for target, deployment in sorted(service.deployments.items()):
                if deployment.breaker.state != "closed":
                    out.append(f"{public}@{target}: breaker {deployment.breaker.state}")
        return out

    @property
    def ready(self) -> bool:
        return all(s.current is not None for s in self.services.values())

    def service(self, name: str) -> Service:
        service = self.by_name.get(name)
        if service is None:  # which models are served is GET /v1/models's to say
            raise HttpError("model-not-found", f"Model '{shown(name)}' is not served.")
        if service.current is None:
            raise HttpError("not-ready", f"Model '{name}' is not loaded yet.")
        return service

    def observe(self, endpoint: str, seconds: float) -> None:
        """Record one request's latency (the labelled child is looked up once)."""
        observe = self._latencies.get(endpoint)
        if observe is None:
            observe = self._latencies[endpoint] = self.metrics.latency.labels(endpoint).observe
        observe(seconds)

    def refusal(self, endpoint: str, error: HttpError) -> HttpError:
        """``error``, with what it keeps from the client logged (bounded)."""
        if error.detail is not None:
            self.errors.note(endpoint, error.detail)
        return error

    def count(self, endpoint: str, status: int) -> None:
        counter = self._counters.get((endpoint, status))
        if counter is None:
            counter = self.metrics.requests.labels(endpoint, str(status)).inc
            self._counters[endpoint, status] = counter
        counter()


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end, cancelling again should the cancellation be
    lost (a loop that catches it, or a race in a library), so a stop never hangs."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (before reading, when declared)."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The ASGI request body (without ``Request.stream``'s generator): 415 unless it is
    declared ``application/json`` (UTF-8), 413 past ``limit`` bytes (before reading, when
    declared)."""
    declared, json_type = b"", False
    for key, value in scope["headers"]:
        if key == b"content-length":
            declared = value
        elif key == b"content-type":
            json_type = _is_json(value)
    if not json_type:
        raise HttpError(
            "unsupported-media-type",
            "The body must be JSON, sent with 'Content-Type: application/json'.",
        )
    if declared.isdigit() and int(declared) > limit:
        raise HttpError(
            "body-too-large",
            f"The body has {int(declared)} bytes; the limit is {limit} (serving.max_body_bytes).",
        )
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


def _is_json(content_type: bytes) -> bool:
    """``application/json``, perhaps with ``charset=utf-8`` (JSON is UTF-8, RFC 8259)."""
    media, *params = content_type.split(b";")
    if media.strip().lower() != b"application/json":
        return False
    for param in params:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"charset" and value.strip(b' \t"').lower() not in _UTF8:
            return False
    return True


_UTF8 = (b"utf-8", b"utf8")

Handler = Callable[[Request, Server], Awaitable[Response]]


def endpoint(
    server: Server, name: str, handler: Handler, *, v2: bool = False, scope: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: refusals become 4xx JSON, a driftloop error its mapped status.
    With API keys, the request's key must hold ``scope`` (None: an open endpoint) and,
    on a model's path, belong to the model's tenant; the key is ``request.state.key``."""

    async def run(request: Request) -> Response:
        try:
            if server.gate is not None and scope is not None:
                key = server.gate.authorize(request.headers.get("authorization"), scope)
                request.state.key = key
                model = request.path_params.get("name")
                if model is not None:
                    server.check_owner(model, key)
                await server.admit(key, scope)
            response = await handler(request, server)
        except HttpError as exc:
            response = error_response(server.refusal(name, exc), v2=v2)
        except DriftloopError as exc:
            response = error_response(server.refusal(name, HttpError.from_error(exc)), v2=v2)
        except ClientDisconnect:
            return Response(status_code=400)  # never sent: the client is gone
        except Exception as exc:
            server.errors.report(name, exc)
            response = error_response(INTERNAL, v2=v2)
        server.count(name, response.status_code)
        return response

    return run
