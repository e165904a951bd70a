"""One served model: the versions its traffic policy routes to (each with its batcher and
circuit breaker), the fallback chain, the shadow, cache, enrichment, missing-value policy
and audit trail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np

from driftloop.audit import AuditBatch, GroupCommitWriter
from driftloop.core.config import BreakerConfig, CacheConfig, TrafficPolicy
from driftloop.core.errors import InvalidParameterError
from driftloop.core.ids import new_ids
from driftloop.registry import InvalidValue, LoadedModel
from driftloop.serving import _chain
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._breaker import STATES, CircuitBreaker
from driftloop.serving._cache import PredictionCache
from driftloop.serving._enrichment import Enricher
from driftloop.serving._errors import HttpError, Violation
from driftloop.serving._features import FeatureSource
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._rules import RulesModel
from driftloop.serving._scored import (
    NO_OPTIONS,
    NO_OUTPUTS,
    Answer,
    Deployment,
    Item,
    Matrix,
    Scored,
    ServedModel,
    audit_batches,
    crashed,
    entity_key,
    explain,
    outputs_for,
)
from driftloop.serving._shadow import Shadow
from driftloop.serving._traffic import ActivePolicy, Router
from driftloop.serving._validation import Options, ParsedInstances, RowSpec, audited

__all__ = ["Service"]

log = logging.getLogger(__name__)

# a request with more rows to score than this, or asking for explanations, is batched
# alone and scored off the event loop: small requests are not held behind it
_INLINE_ROWS = 64


class Service:
    """Serves one :class:`ServedModel`: routes each request to a version by the traffic
    policy, falls back along the chain when that version cannot answer, and follows the
    aliases as they move."""

    def __init__(
        self,
        served: ServedModel,
        source: ModelSource,
        *,
        features: FeatureSource | None,
        writer: GroupCommitWriter | None,
        metrics: ServingMetrics,
        cache: CacheConfig,
        max_rows: int,
        max_wait_s: float,
        breaker: BreakerConfig | None = None,
        feature_breaker: CircuitBreaker | None = None,
        feature_timeout_s: float = 0.25,
        shadow_queue: int = 1_000,
    ) -> None:
        self.served = served
        self.source = source
        self.enricher = (
            None
            if features is None
            else Enricher(
                served, features, metrics, breaker=feature_breaker, timeout_s=feature_timeout_s
            )
        )
        self.writer = writer
        self.metrics = metrics
        self.cache_config = cache
        self.cache = PredictionCache(max_entries=cache.max_entries, ttl_s=cache.ttl_s)
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.breaker_config = breaker or BreakerConfig()
        self.current: Deployment | None = None  # the served alias's version: the champion
        self.deployments: dict[str, Deployment] = {}  # by alias or version
        self.traffic = ActivePolicy(served.traffic)
        self.router = Router(served.traffic, base=served.alias)
        self.shadow = Shadow(self, shadow_queue)
        self._hits = metrics.cache_hits.labels(served.name)
        self._misses = metrics.cache_misses.labels(served.name)
        self._batch_rows = metrics.batch_rows.labels(served.name)
        self._predictions: dict[str, Any] = {}
        self.arm_metrics: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._shown: set[tuple[str, str]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._heavy: ThreadPoolExecutor | None = None
        self.warned: dict[str, float] = {}  # alias or version -> when its failure was logged
        # the tenant its audit rows are written under (the server sets who decides)
        self.tenant_of: Callable[[], str] = lambda: served.tenant or "default"
        # (alias or version, reason: error or breaker-open) -> calls passed to the next link
        self.passed_over: Counter[tuple[str, str]] = Counter()
        self.batcher: DynamicBatcher[Item, Scored] = DynamicBatcher(
            self._run,
            size=lambda item: len(item.todo),
            alone=lambda item: item.heavy,
            max_rows=max_rows,
            max_wait_s=max_wait_s,
        )

    # -- versions ---------------------------------------------------------------------
    async def refresh(self) -> bool:
        """Follow every alias the policy routes to: load new versions off the loop, then
        swap. True if any version changed."""
        swapped = False
        for target in dict.fromkeys((self.served.alias, *self.router.targets)):
            swapped |= await self._follow(target)
        return swapped

    async def _follow(self, target: str) -> bool:
        """Bring ``target`` (an alias, or a version number) to its current version."""
        name = self.served.name
        if target.isdigit():
            version = target
        else:
            version = await asyncio.to_thread(self.source.resolve, name, target)
        old = self.deployments.get(target)
        if old is not None and old.model.version == version:
            return False
        same = next((d for d in self.deployments.values() if d.model.version == version), None)
        model = (
            same.model
            if same is not None
            else await asyncio.to_thread(self.source.load, name, version)
        )
        deployment = self._deploy(target, model)
        self.deployments[target] = deployment
        if target == self.served.alias:
            self.current = deployment
        self._loaded()
        return True

    def arms_now(self) -> list[dict[str, Any]]:
        """Each arm as routed now: its version, weight (percent), breaker state, and the
        calls to it since start that failed (``failed``) or that its open breaker
        refused (``refused``), each answered by the next link."""
        router = self.router
        total = sum(router.weights)
        arms = []
        for name, weight in zip(router.arms, router.weights, strict=True):
            deployment = self.deployments.get(name)
            arms.append(
                {
                    "name": name,
                    "version": deployment.model.version if deployment else None,
                    "weight": round(100.0 * weight / total, 4),
                    "breaker": deployment.breaker.state if deployment else None,
                    "failed": self.passed_over[name, "error"],
                    "refused": self.passed_over[name, "breaker-open"],
                }
            )
        return arms

    def _spec(self, model: LoadedModel) -> RowSpec:
        sticky = self.router.sticky_key
        keys = (sticky,) if sticky is not None else ()
        return RowSpec.of(model.signature, self.served.entity_keys, keys)

    def _deploy(self, target: str, model: LoadedModel) -> Deployment:
        spec = self._spec(model)
        defaults = self._defaults(model, spec)
        rules = None
        if self.served.fallback is not None:
            rules = RulesModel.for_model(self.served.fallback, model)
        model.predict(np.full((1, len(model.feature_names)), np.nan))  # warm up
        gauge = self.metrics.breaker_state.labels(self.served.name, target)
        breaker = CircuitBreaker(
            self.breaker_config, on_change=lambda state: gauge.set(STATES[state])
        )
        gauge.set(0)
        deployment = Deployment(target, model, spec, defaults, breaker, rules)
        self._place(deployment, self.router)
        return deployment

    def _place(self, deployment: Deployment, router: Router) -> None:
        """A shadow that no arm shares scores in its own thread (a slow one must not hold
        the event loop); the versions that answer share the service's batcher, so A/B
        arms share audit commits."""
        deployment.offload = deployment.target == router.shadow and (
            deployment.target not in router.arms
        )
        deployment.batcher = self.batcher

    def _loaded(self) -> None:
        """``driftloop_model_info``: 1 for each version loaded now, 0 for the others."""
        loaded = self.metrics.model_loaded
        live = {(d.model.version, d.model.runtime) for d in self.deployments.values()}
        for version, runtime in self._shown - live:
            loaded.labels(self.served.name, version, runtime).set(0)
        for version, runtime in live - self._shown:
            loaded.labels(self.served.name, version, runtime).set(1)
        self._shown = live

    async def apply(self, state: ActivePolicy) -> None:
        """Route by ``state`` from now on. Every version it needs is loaded first (an
        unknown alias or version refuses the change and keeps the old policy); requests
        in flight finish on the version they started on."""
        router = Router(state.policy, base=self.served.alias)
        await self.preload(state.policy)
        sticky_changed = router.sticky_key != self.router.sticky_key
        self.router, self.traffic = router, state
        if sticky_changed:  # requests may (or no longer may) carry the sticky field
            for deployment in self.deployments.values():
                deployment.spec = self._spec(deployment.model)
        self.metrics.traffic_revision.labels(self.served.name).set(state.revision)
        keep = {self.served.alias, *router.targets}
        for target in [t for t in self.deployments if t not in keep]:
            del self.deployments[target]
        for deployment in self.deployments.values():
            self._place(deployment, router)
        self._loaded()
        self.shadow.retarget()

    async def preload(self, policy: TrafficPolicy | None) -> None:
        """Load every version ``policy`` routes to; an alias or version that cannot be
        loaded is refused, naming it."""
        for target in Router(policy, base=self.served.alias).targets:
            if target not in self.deployments:
                try:
                    await self._follow(target)
                except Exception as exc:
                    raise InvalidParameterError(
                        f"Traffic for model '{self.served.name}': arm or shadow '{target}' "
                        f"cannot be loaded: {exc}"
                    ) from None

    def _heavy_pool(self) -> ThreadPoolExecutor:
        """Large batches and explanations: scored in a thread (the model runtimes release
        the GIL), so the event loop keeps answering small requests meanwhile."""
        if self._heavy is None:
            self._heavy = ThreadPoolExecutor(1, thread_name_prefix=f"heavy-{self.served.name}")
        return self._heavy

    def _offload_pool(self) -> ThreadPoolExecutor:
        """The shadow's own thread: a shadow that hangs holds it, and nothing else."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"shadow-{self.served.name}")
        return self._pool

    async def close(self) -> None:
        await self.shadow.stop()
        for pool in (self._pool, self._heavy):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _defaults(self, model: LoadedModel, spec: RowSpec) -> dict[int, tuple[float, Any]]:
        """The missing policy's defaults, encoded; a default that breaks its feature's
        rule (or names no feature) stops the version from loading."""
        out: dict[int, tuple[float, Any]] = {}
        for name, value in self.served.missing.defaults.items():
            slot = spec.slots.get(name)
            if slot is None or slot.encoder is None:
                raise InvalidParameterError(
                    f"models.{self.served.name}.missing.defaults.{name}: version "
                    f"{model.version} has no such feature (it has {', '.join(spec.features)})."
                )
            try:
                number = slot.encoder.encode(value)
                out[slot.column] = (number, audited(slot.encoder, value, number))
            except InvalidValue as exc:
                raise InvalidParameterError(
                    f"models.{self.served.name}.missing.defaults.{name} {exc.rule}; got {value!r}."
                ) from None
        return out

    # -- one batch: per version one feature read and one model call; one audit commit ---
    async def _run(self, items: Sequence[Item]) -> list[Scored]:
        """A batch of requests, perhaps routed to several versions (A/B arms): they share
        one audit commit, so splitting traffic does not multiply commits."""
        first = items[0].deployment
        if all(it.deployment is first for it in items):
            out, batches, done = await self._score(first, items)
            await self._audited(batches)
            self._counted(first.model).inc(done)
            return out
        groups: dict[int, tuple[Deployment, list[int]]] = {}
        for k, it in enumerate(items):
            groups.setdefault(id(it.deployment), (it.deployment, []))[1].append(k)
        results: list[Scored | None] = [None] * len(items)
        audit: list[AuditBatch] = []
        counts = []
        for deployment, ks in groups.values():
            try:
                out, batches, done = await self._score(deployment, [items[k] for k in ks])
            except Exception as exc:  # this version's requests fail; the others' do not
                for k in ks:
                    results[k] = crashed(deployment, exc)
                continue
            for k, scored in zip(ks, out, strict=True):
                results[k] = scored
            audit += batches
            counts.append((deployment.model, done))
        await self._audited(audit)
        for model, done in counts:
            self._counted(model).inc(done)
        return [r for r in results if r is not None]

    async def _audited(self, batches: list[AuditBatch]) -> None:
        if self.writer is not None and batches:  # durable before any caller is answered
            await self.writer.awrite_batches(batches)

    async def _score(
        self, deployment: Deployment, items: Sequence[Item]
    ) -> tuple[list[Scored], list[AuditBatch], int]:
        """Enrich, settle and score ``items`` on one version: their answers, audit rows
        and how many rows were answered."""
        model = deployment.model
        wanted = [(k, i, f) for k, it in enumerate(items) for i, f in it.parsed.enrich.items()]
        stamps: list[list[dict[str, datetime | None]]]
        short: set[int] | None = None  # the requests enrichment left a feature without
        if wanted and self.enricher is not None:
            stamps = [[{} for _ in range(it.n)] for it in items]
            short = await self.enricher.read(deployment, items, wanted, stamps)
            if short is None:
                self.enricher.degrade(deployment, items)
        else:
            stamps = [[{}] * it.n for it in items]  # shared, never written
        for k, it in enumerate(items):
            parsed = it.parsed
            if not parsed.enrich or it.fallback:
                continue
            if short is None or k in short or not parsed.enrich_only:
                it.error = self._settle(deployment, it, parsed.enrich)
        live = [it for it in items if it.error is None and not it.fallback]
        parts = [
            it.parsed.matrix if len(it.todo) == it.n else it.parsed.matrix[it.todo]
            for it in live
            if it.todo
        ]
        wanted_explained = [it for it in live if it.options.explain]
        explained: dict[int, list[dict[str, float]]] = {}
        if parts or wanted_explained:
            rows = (np.vstack(parts) if len(parts) > 1 else parts[0]) if parts else None
            if rows is not None:
                self._batch_rows.observe(len(rows))
            pool = self._offload_pool() if deployment.offload else None
            if pool is None and (wanted_explained or any(it.heavy for it in live)):
                pool = self._heavy_pool()
            if pool is None:  # small: a thread hop would cost more than the call
                raw = model.predict(rows) if rows is not None else None
            else:
                raw, explained = await asyncio.get_running_loop().run_in_executor(
                    pool, _infer, model, rows, wanted_explained
                )
            start = 0
            for it in live:
                n = len(it.todo)
                if raw is None or not n:
                    continue
                if n == it.n:
                    it.raw = raw[start : start + n]
                else:
                    assert it.raw is not None  # cache hits filled it
                    it.raw[it.todo] = raw[start : start + n]
                start += n
        out = [self.scored(deployment, it, explained.get(id(it))) for it in items]
        done = [k for k, it in enumerate(items) if it.error is None and not it.fallback]
        batches = (
            audit_batches(deployment, items, stamps, out, done, self.tenant_of()) if done else []
        )
        return out, batches, sum(items[k].n for k in done)

    def scored(
        self,
        deployment: Deployment,
        it: Item,
        explained: list[dict[str, float]] | None = None,
    ) -> Scored:
        model = deployment.model
        task = deployment.task
        raw = it.raw if it.raw is not None else NO_OUTPUTS
        if it.error is not None or it.fallback:
            return Scored(
                [], task, model.classes, raw, None, None, {}, None, it.error,
                it.degraded, it.fallback,
            )  # fmt: skip
        policy = self.served.decision
        decisions = None
        if policy is not None and task != "multiclass":
            decide = policy.decide
            decisions = [decide(s) for s in raw.tolist()]
        return Scored(
            it.ids if it.ids is not None else new_ids(it.n),
            task,
            model.classes,
            raw,
            decisions,
            it.missing,
            it.parsed.unseen,
            explained,
            degraded=it.degraded,
        )

    def _counted(self, model: LoadedModel) -> Any:
        """The predictions counter of ``model``'s version (label lookups cost per call)."""
        child = self._predictions.get(model.version)
        if child is None:
            child = self.metrics.predictions.labels(self.served.name, model.version)
            self._predictions[model.version] = child
        return child

    def _settle(self, deployment: Deployment, it: Item, rows: Iterable[int]) -> HttpError | None:
        """Apply the missing policy to ``rows`` of a request: name each row's features
        without a value, fill declared defaults, or refuse (reject)."""
        matrix = it.parsed.matrix
        rows = list(rows)
        if not rows:
            return None
        empty = np.isnan(matrix[rows])
        if not empty.any():
            return None
        features, policy = deployment.spec.features, self.served.missing
        violations: list[Violation] = []
        for r, i in enumerate(rows):
            if not empty[r].any():
                continue
            unseen = it.parsed.unseen.get(i, ())
            names = [
                features[j] for j in np.flatnonzero(empty[r]).tolist() if features[j] not in unseen
            ]
            if it.missing is None:
                it.missing = [[] for _ in range(it.n)]
            it.missing[i] = names
            for name in names:
                self.metrics.missing.labels(self.served.name, name, "missing").inc()
            for name in unseen:
                self.metrics.missing.labels(self.served.name, name, "unseen").inc()
            if policy.policy == "reject" and names:
                violations.append(
                    {"instance": i, "field": names[0], "rule": "has no value (the model's "
                     "missing policy is reject)", "missing": names}
                )  # fmt: skip
            elif policy.policy == "default":
                for j in np.flatnonzero(empty[r]).tolist():
                    default = deployment.defaults.get(j)
                    if default is not None and features[j] not in unseen:
                        matrix[i, j] = default[0]
                        if it.parsed.raw is not None:
                            it.parsed.raw[i][j] = default[1]
        if not violations:
            return None
        first = violations[0]
        return HttpError(
            "data-invalid",
            f"{len(violations)} instance(s) lack feature values; first: instance "
            f"{first['instance']}, field '{first['field']}' {first['rule']}.",
            violations,
        )

    async def answer(
        self,
        parse: Callable[[RowSpec], ParsedInstances],
        options: Options,
        *,
        key: Any = None,
        proto: str,
        started: float,
    ) -> Answer:
        """One request through the traffic policy and the fallback chain (:mod:`._chain`)."""
        return await _chain.answer(self, parse, options, key=key, proto=proto, started=started)

    async def score_shadow(
        self, deployment: Deployment, copies: list[tuple[ParsedInstances, list[str]]]
    ) -> int:
        """Score shadow copies (parsed requests and their ids) on ``deployment`` in one go,
        audited under route ``shadow``; how many were answered."""
        started = time.perf_counter()
        items = []
        for parsed, ids in copies:
            n = len(parsed.matrix)
            item = Item(
                parsed, n, list(range(n)), None, None, NO_OPTIONS, "shadow", started,
                deployment=deployment, ids=ids,
            )  # fmt: skip
            if not parsed.complete and np.isnan(parsed.matrix).any():
                rows = (i for i in range(n) if i not in parsed.enrich)
                if self._settle(deployment, item, rows) is not None:
                    continue  # the missing policy refuses it (reject)
            items.append(item)
        if not items:
            return 0
        out, batches, done = await self._score(deployment, items)
        await self._audited(batches)
        self._counted(deployment.model).inc(done)
        return sum(s.error is None and not s.fallback for s in out)

    async def score_on(
        self,
        deployment: Deployment,
        parsed: ParsedInstances,
        options: Options,
        *,
        route: str,
        started: float,
        ids: list[str] | None = None,
    ) -> Scored:
        """Score a request on one version: missing values settled, cache consulted, then
        batched with other requests (enrichment, model, audit)."""
        model = deployment.model
        n = len(parsed.matrix)
        item = Item(
            parsed, n, [], None, None, options, route, started, deployment=deployment, ids=ids
        )
        if not (parsed.complete or parsed.enrich_only) and np.isnan(parsed.matrix).any():
            # rows to enrich are settled once enriched
            error = self._settle(deployment, item, (i for i in range(n) if i not in parsed.enrich))
            if error is not None:
                raise error
        keys: list[Any] = []
        if self.cache_config.enabled and self.cache.max_entries > 0:
            item.todo, keys = self._lookup(model, item)
        else:
            item.todo = list(range(n))  # every row is scored
        item.heavy = options.explain or len(item.todo) > _INLINE_ROWS
        scored = await deployment.batcher.submit(item)
        if scored.crash is not None:
            raise scored.crash
        if scored.error is not None:
            raise scored.error
        for i in item.todo if keys and not scored.fallback else ():
            if keys[i] is not None:
                self.cache.put(keys[i], scored.outputs[i].copy())
        return scored

    def _lookup(self, model: LoadedModel, item: Item) -> tuple[list[int], list[Any]]:
        """The rows still to score, and each row's cache key (hits filled in)."""
        parsed = item.parsed
        n = len(parsed.matrix)
        keys: list[Any] = [None] * n
        todo: list[int] = []
        item.raw = outputs_for(model, n)
        for i in range(n):
            if i not in parsed.enrich or self.cache_config.cache_enriched:
                keys[i] = (model.version, parsed.matrix[i].tobytes(), entity_key(parsed, i))
                hit = self.cache.get(keys[i])
                if hit is not None:
                    item.raw[i] = hit
                    continue
            todo.append(i)
        self._hits.inc(n - len(todo))
        self._misses.inc(len(todo))
        return todo, keys


def _infer(
    model: LoadedModel, rows: Matrix | None, explaining: list[Item]
) -> tuple[Matrix | None, dict[int, list[dict[str, float]]]]:
    """A batch's model call and the explanations asked for (by ``id`` of their item), in
    one thread hop."""
    raw = model.predict(rows) if rows is not None else None
    return raw, {id(it): explain(model, it.parsed.matrix, it.options) for it in explaining}
