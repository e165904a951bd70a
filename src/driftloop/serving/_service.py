"""One served model: the versions its traffic policy routes to (each with its batcher and
circuit breaker), the fallback chain, the shadow, cache, enrichment, missing-value policy
and audit trail."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.audit import AuditBatch, GroupCommitWriter
from driftloop.core.config import (
    BreakerConfig,
    CacheConfig,
    DecisionPolicy,
    FallbackPolicy,
    MissingPolicy,
    TrafficPolicy,
)
from driftloop.core.errors import DriftloopError, InvalidParameterError
from driftloop.registry import InvalidValue, LoadedModel
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._breaker import STATES, CircuitBreaker
from driftloop.serving._cache import PredictionCache
from driftloop.serving._errors import HttpError, Violation
from driftloop.serving._features import EnrichedRow, FeatureSource
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._rules import RulesModel
from driftloop.serving._shadow import Shadow
from driftloop.serving._traffic import ActivePolicy, Router
from driftloop.serving._validation import Options, ParsedInstances, RowSpec, audited

__all__ = ["Answer", "Scored", "ServedModel", "Service"]

log = logging.getLogger(__name__)
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ServedModel:
    """A model to serve: registry ``name`` at ``alias``, reachable as ``as_name``
    (default ``name``) and as ``name@alias``; ``entity_keys`` are the request fields
    that enrichment reads online features by; ``decision`` turns scores into decisions
    (none by default); ``missing`` says what a feature without a value does;
    ``fallback`` declares the rules and safe default that answer when no version can;
    ``traffic`` is the settings file's routing policy (a run-time change replaces it)."""

    name: str
    alias: str = "champion"
    entity_keys: tuple[str, ...] = ()
    as_name: str | None = None
    decision: DecisionPolicy | None = None
    missing: MissingPolicy = field(default_factory=MissingPolicy)
    fallback: FallbackPolicy | None = None
    traffic: TrafficPolicy | None = None

    @property
    def public_names(self) -> tuple[str, ...]:
        return (self.as_name or self.name, f"{self.name}@{self.alias}")


@dataclass(slots=True)
class _Item:
    """One request in a batch: its parsed rows, which need the model, what the cache knew,
    and each row's features without a value."""

    parsed: ParsedInstances
    n: int
    todo: list[int]
    raw: Matrix | None  # each row's model outputs (a value, or one per class), once known
    missing: list[list[str]] | None  # None: every feature had a value
    options: Options
    route: str
    started: float
    error: HttpError | None = None
    deployment: Any = None  # the version (_Deployment) that scores it
    ids: list[str] | None = None  # given (a shadow's), else made when scored
    degraded: str | None = None  # why the answer is not the model's usual one
    fallback: bool = False  # the model cannot answer it: the fallback chain must


@dataclass
class Scored:
    """One request's answers, in columns: ``outputs`` are the model's raw outputs (see
    :class:`~driftloop.stats.Outputs`), ``decisions`` the policy's (None without one);
    ``missing`` (None when every feature had a value) and ``unseen`` name each row's
    features without a value and categories never seen in training."""

    ids: list[str]
    task: str
    classes: tuple[str, ...]
    outputs: Matrix
    decisions: list[str] | None
    missing: list[list[str]] | None
    unseen: dict[int, list[str]]
    explanations: list[dict[str, float]] | None
    error: HttpError | None = None
    degraded: str | None = None
    fallback: bool = False
    crash: Exception | None = None  # its version raised (in a batch shared with others)

    @property
    def scores(self) -> list[float]:
        """One number per row: the positive probability, the top class's, or the value."""
        top = self.outputs.max(axis=1) if self.outputs.ndim == 2 else self.outputs
        values: list[float] = top.tolist()
        return values


@dataclass
class Answer:
    """A request's answers and how it was routed: the ``arm`` the policy picked, the
    ``link`` of the fallback chain that answered (``model``: the arm itself; ``champion``;
    ``rules``; ``default``), the version that answered (for rules and default: the
    champion's, whose features they read), the arm's breaker state, and why the answer
    is degraded (None when it is not)."""

    scored: Scored
    parsed: ParsedInstances
    model: str
    version: str
    arm: str
    link: str
    breaker: str
    degraded: str | None
    revision: int

    def route(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arm": self.arm, "link": self.link, "breaker": self.breaker}
        if self.degraded is not None:
            out["degraded"] = self.degraded
        if self.revision:
            out["policy_revision"] = self.revision
        return out


class _Deployment:
    """One loaded version behind one alias (or version) of a served model."""

    def __init__(
        self,
        target: str,
        model: LoadedModel,
        spec: RowSpec,
        defaults: dict[int, tuple[float, Any]],
        breaker: CircuitBreaker,
        rules: RulesModel | None,
    ) -> None:
        self.target = target
        self.model = model
        self.spec = spec
        self.defaults = defaults  # column -> (encoded, raw) declared default
        self.breaker = breaker
        self.rules = rules  # the fallback's rules, read with this version's features
        self.task = model.task  # read per request: a plain attribute
        self.offload = False  # score in a thread (a shadow: never block the event loop)
        self.batcher: DynamicBatcher[_Item, Scored]  # the service's


_NO_OUTPUTS: Matrix = np.empty(0)
_NO_OPTIONS = Options()


_ID_PREFIX = os.urandom(8).hex()  # random per process: ids never collide across workers
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _reseed_ids() -> None:  # a forked worker must not repeat its parent's ids
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_reseed_ids)


def next_id() -> str:
    """A unique prediction id (32 hex digits): cheaper than uuid4 on the hot path."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


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
        self.features = features
        self.writer = writer
        self.metrics = metrics
        self.cache_config = cache
        self.cache = PredictionCache(max_entries=cache.max_entries, ttl_s=cache.ttl_s)
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.breaker_config = breaker or BreakerConfig()
        self.feature_breaker = feature_breaker
        self.feature_timeout_s = feature_timeout_s
        self.current: _Deployment | None = None  # the served alias's version: the champion
        self.deployments: dict[str, _Deployment] = {}  # by alias or version
        self.traffic = ActivePolicy(served.traffic)
        self.router = Router(served.traffic, base=served.alias)
        self.shadow = Shadow(self, shadow_queue)
        self._hits = metrics.cache_hits.labels(served.name)
        self._misses = metrics.cache_misses.labels(served.name)
        self._batch_rows = metrics.batch_rows.labels(served.name)
        self._predictions: dict[str, Any] = {}
        self._arm_metrics: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._shown: set[tuple[str, str]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._warned = -math.inf
        self.batcher: DynamicBatcher[_Item, Scored] = DynamicBatcher(
            self._run,
            size=lambda item: len(item.todo),
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

    def _spec(self, model: LoadedModel) -> RowSpec:
        sticky = self.router.sticky_key
        keys = (sticky,) if sticky is not None else ()
        return RowSpec.of(model.signature, self.served.entity_keys, keys)

    def _deploy(self, target: str, model: LoadedModel) -> _Deployment:
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
        deployment = _Deployment(target, model, spec, defaults, breaker, rules)
        self._place(deployment, self.router)
        return deployment

    def _place(self, deployment: _Deployment, router: Router) -> None:
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

    def _offload_pool(self) -> ThreadPoolExecutor:
        """The shadow's own thread: a shadow that hangs holds it, and nothing else."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"shadow-{self.served.name}")
        return self._pool

    async def close(self) -> None:
        await self.shadow.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

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
    async def _run(self, items: Sequence[_Item]) -> list[Scored]:
        """A batch of requests, perhaps routed to several versions (A/B arms): they share
        one audit commit, so splitting traffic does not multiply commits."""
        first = items[0].deployment
        if all(it.deployment is first for it in items):
            out, batches, done = await self._score(first, items)
            await self._audited(batches)
            self._counted(first.model).inc(done)
            return out
        groups: dict[int, tuple[_Deployment, list[int]]] = {}
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
                    results[k] = _crashed(deployment, exc)
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
        self, deployment: _Deployment, items: Sequence[_Item]
    ) -> tuple[list[Scored], list[AuditBatch], int]:
        """Enrich, settle and score ``items`` on one version: their answers, audit rows
        and how many rows were answered."""
        model = deployment.model
        wanted = [(k, i, f) for k, it in enumerate(items) for i, f in it.parsed.enrich.items()]
        stamps: list[list[dict[str, datetime | None]]]
        if wanted and self.features is not None:
            stamps = [[{} for _ in range(it.n)] for it in items]
            if not await self._enrich(deployment, items, wanted, stamps):
                self._degrade(deployment, items)
        else:
            stamps = [[{}] * it.n for it in items]  # shared, never written
        for it in items:
            if it.parsed.enrich and not it.fallback:
                it.error = self._settle(deployment, it, it.parsed.enrich)
        live = [it for it in items if it.error is None and not it.fallback]
        parts = [
            it.parsed.matrix if len(it.todo) == it.n else it.parsed.matrix[it.todo]
            for it in live
            if it.todo
        ]
        if parts:
            rows = np.vstack(parts) if len(parts) > 1 else parts[0]
            self._batch_rows.observe(len(rows))
            raw = (
                await asyncio.get_running_loop().run_in_executor(
                    self._offload_pool(), model.predict, rows
                )
                if deployment.offload
                else model.predict(rows)
            )
            start = 0
            for it in live:
                n = len(it.todo)
                if n == it.n:
                    it.raw = raw[start : start + n]
                elif n:
                    assert it.raw is not None  # cache hits filled it
                    it.raw[it.todo] = raw[start : start + n]
                start += n
        out = [self._scored(deployment, it) for it in items]
        done = [k for k, it in enumerate(items) if it.error is None and not it.fallback]
        batches = self._audit_batches(deployment, items, stamps, out, done) if done else []
        return out, batches, sum(items[k].n for k in done)

    def _scored(self, deployment: _Deployment, it: _Item) -> Scored:
        model = deployment.model
        task = deployment.task
        raw = it.raw if it.raw is not None else _NO_OUTPUTS
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
        explained = (
            self._explain(model, it.parsed.matrix, it.options) if it.options.explain else None
        )
        return Scored(
            it.ids if it.ids is not None else [next_id() for _ in range(it.n)],
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

    async def _enrich(
        self,
        deployment: _Deployment,
        items: Sequence[_Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> bool:
        """Read the batch's online features; False when the store could not answer in
        time (its breaker open, an error, or past ``feature_timeout_s``)."""
        assert self.features is not None
        breaker = self.feature_breaker
        if breaker is not None and not breaker.allow():
            return False
        names = sorted({name for _, _, fs in wanted for name in fs})
        features = deployment.spec.features
        entity_rows = []
        for k, i, absent in wanted:
            parsed = items[k].parsed
            values = parsed.raw[i] if parsed.raw is not None else parsed.matrix[i].tolist()
            entity_rows.append(
                {
                    **{
                        f: v
                        for f, v in zip(features, values, strict=True)
                        if f not in absent and v is not None and v == v
                    },
                    **parsed.entity_rows[i],
                }
            )  # request values too: on-demand features may use them
        started = time.perf_counter()
        try:
            read = await asyncio.wait_for(
                asyncio.to_thread(self.features.read, entity_rows, names),
                self.feature_timeout_s,
            )
        except Exception as exc:  # down, hung or broken: the batch is answered degraded
            if breaker is not None:
                breaker.record(False, time.perf_counter() - started)
            if time.monotonic() - self._warned > 10.0:  # once per 10 s, not per batch
                self._warned = time.monotonic()
                log.warning("Online features unavailable for %s: %s", self.served.name, exc)
            return False
        if breaker is not None:
            breaker.record(True, time.perf_counter() - started)
        self._fill(deployment, items, wanted, read, stamps)
        return True

    def _degrade(self, deployment: _Deployment, items: Sequence[_Item]) -> None:
        """The online store did not answer: rows needing it keep their features missing.
        With declared default values the model answers with them; otherwise the
        fallback chain answers (when the model has one), flagged degraded either way."""
        for it in items:
            if not it.parsed.enrich:
                continue
            it.degraded = "features-unavailable"
            self.metrics.degraded.labels(self.served.name, it.degraded).inc()
            if self.served.missing.policy == "default":
                continue
            if deployment.rules is not None:
                it.fallback = True
            elif self.served.missing.policy == "reject":
                it.error = HttpError(
                    "unavailable",
                    f"The online feature store did not answer, and model "
                    f"'{self.served.name}' rejects rows with missing features and declares "
                    f"no fallback ([models.{self.served.name}.fallback]).",
                )

    def _fill(
        self,
        deployment: _Deployment,
        items: Sequence[_Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        read: list[EnrichedRow],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> None:
        """Put read values in the rows, encoded by each feature's rule; a value that breaks
        it (a store out of step with the model) stays null and is flagged missing."""
        spec = deployment.spec
        slots = spec.slots
        for (k, i, names), enriched in zip(wanted, read, strict=True):
            parsed = items[k].parsed
            for name in names:
                value = enriched.values.get(name)
                stamps[k][i][name] = enriched.timestamps.get(name)
                slot = slots.get(name)
                if value is None or slot is None or slot.encoder is None:
                    continue
                try:
                    number = slot.encoder.encode(value)
                except InvalidValue:
                    log.warning("Feature %s read %r, which %s", name, value, slot.encoder.rule)
                    continue
                parsed.matrix[i, slot.column] = number
                if parsed.raw is not None:
                    parsed.raw[i][slot.column] = audited(slot.encoder, value, number)
                if number != number and slot.encoder.unseen(value):
                    parsed.unseen.setdefault(i, []).append(name)

    def _settle(self, deployment: _Deployment, it: _Item, rows: Iterable[int]) -> HttpError | None:
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

    # -- one request ---------------------------------------------------------------------
    async def answer(
        self,
        parse: Callable[[RowSpec], ParsedInstances],
        options: Options,
        *,
        key: Any = None,
        proto: str,
        started: float,
    ) -> Answer:
        """One request through the traffic policy and the fallback chain: the picked
        arm's version, then the champion, then the rules, then the safe default; the
        first link that answers does. ``parse`` reads the request's instances by a
        version's spec (versions may take different features)."""
        router, base = self.router, self.current
        assert base is not None, "predict before the model was loaded"
        arm = router.pick(key)
        chosen = self.deployments.get(arm, base)
        links = [chosen] if chosen is base else [chosen, base]
        failed: Exception | None = None
        degraded: str | None = None
        parsed: ParsedInstances | None = None
        parsed_by: RowSpec | None = None
        for link in links:
            breaker = link.breaker
            if not breaker.allow():
                self._fell_back(link, "breaker-open")
                continue
            try:  # a request this version cannot read is the caller's (or our) error
                parsed, parsed_by = parse(link.spec), link.spec
            except BaseException:
                breaker.cancel()
                raise
            t0 = time.perf_counter()
            try:
                scored = await self._score_on(link, parsed, options, route=proto, started=started)
            except HttpError:  # the caller's request, or a refusal no link would change
                breaker.cancel()
                raise
            except Exception as exc:
                breaker.record(False, time.perf_counter() - t0)
                self._fell_back(link, "error")
                log.warning(
                    "Model %s version %s failed (%s: %s); the next link answers.",
                    self.served.name, link.model.version, type(exc).__name__, exc,
                )  # fmt: skip
                failed = exc
                continue
            breaker.record(True, time.perf_counter() - t0)
            if scored.fallback:  # the online store is down: the rules answer
                degraded = scored.degraded
                break
            if router.shadow is not None and router.shadowed():
                self.shadow.offer(parse, scored.ids)
            link_name = "model" if link is chosen else "champion"
            return self._answered(scored, parsed, link, arm, link_name, chosen, started)
        if parsed_by is not base.spec:  # the rules read the champion's features
            parsed = None
        return await self._last_resort(parse, parsed, arm, chosen, proto, started, degraded, failed)

    def _answered(
        self,
        scored: Scored,
        parsed: ParsedInstances,
        link: _Deployment,
        arm: str,
        link_name: str,
        chosen: _Deployment,
        started: float,
    ) -> Answer:
        version = link.model.version
        counted = self._arm_metrics.get((arm, version, link_name))
        if counted is None:
            m, name = self.metrics, self.served.name
            counted = (
                m.arm_requests.labels(name, arm, version, link_name).inc,
                m.arm_latency.labels(name, arm, version).observe,
                m.arm_scores.labels(name, arm, version).observe,
            )
            self._arm_metrics[arm, version, link_name] = counted
        inc, latency, score = counted
        inc()
        latency(time.perf_counter() - started)
        for value in scored.scores:
            score(value)
        return Answer(
            scored,
            parsed,
            self.served.name,
            version,
            arm,
            link_name,
            chosen.breaker.state,
            scored.degraded,
            self.traffic.revision,
        )

    def _fell_back(self, link: _Deployment, reason: str) -> None:
        self.metrics.fallbacks.labels(self.served.name, link.target, reason).inc()
        if reason == "error":
            self.metrics.arm_errors.labels(self.served.name, link.target, link.model.version).inc()

    async def _last_resort(
        self,
        parse: Callable[[RowSpec], ParsedInstances],
        parsed: ParsedInstances | None,
        arm: str,
        chosen: _Deployment,
        proto: str,
        started: float,
        degraded: str | None,
        failed: Exception | None,
    ) -> Answer:
        """The rules model, or the safe default, answers (audited under their own route);
        without a fallback declared the request fails with 503."""
        base = self.current
        assert base is not None
        rules = base.rules
        if rules is None:
            reason = type(failed).__name__ if failed is not None else "breakers open"
            raise HttpError(
                "unavailable",
                f"Model '{self.served.name}' could not answer ({reason}) and declares no "
                f"fallback ([models.{self.served.name}.fallback]).",
            )
        if parsed is None:
            parsed = parse(base.spec)
        n = len(parsed.matrix)
        try:
            raw = rules.predict(parsed.matrix, parsed.raw)
        except DriftloopError as exc:  # rules that fail without a default: no answer
            raise HttpError(
                "unavailable",
                f"Model '{self.served.name}' could not answer and its fallback rules gave "
                f"no answer: {exc.message}",
            ) from None
        link_name = "rules" if rules.expression is not None else "default"
        # no explanations: the model's contributions would not explain the rules' answer
        item = _Item(parsed, n, [], raw, None, Options(), f"{proto}:{link_name}", started)
        item.degraded = degraded or "fallback"
        scored = self._scored(base, item)
        if self.writer is not None:
            await self.writer.awrite_batches(
                self._audit_batches(base, [item], [[{}] * n], [scored], [0])
            )
        self.metrics.degraded.labels(self.served.name, item.degraded).inc()
        return self._answered(scored, parsed, base, arm, link_name, chosen, started)

    async def score_shadow(
        self, deployment: _Deployment, copies: list[tuple[ParsedInstances, list[str]]]
    ) -> int:
        """Score shadow copies (parsed requests and their ids) on ``deployment`` in one go,
        audited under route ``shadow``; how many were answered."""
        started = time.perf_counter()
        items = []
        for parsed, ids in copies:
            n = len(parsed.matrix)
            item = _Item(
                parsed, n, list(range(n)), None, None, _NO_OPTIONS, "shadow", started,
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

    async def _score_on(
        self,
        deployment: _Deployment,
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
        item = _Item(
            parsed, n, [], None, None, options, route, started, deployment=deployment, ids=ids
        )
        if not parsed.complete and np.isnan(parsed.matrix).any():  # enriched: once enriched
            error = self._settle(deployment, item, (i for i in range(n) if i not in parsed.enrich))
            if error is not None:
                raise error
        keys: list[Any] = []
        if self.cache_config.enabled and self.cache.max_entries > 0:
            item.todo, keys = self._lookup(model, item)
        else:
            item.todo = list(range(n))  # every row is scored
        scored = await deployment.batcher.submit(item)
        if scored.crash is not None:
            raise scored.crash
        if scored.error is not None:
            raise scored.error
        for i in item.todo if keys and not scored.fallback else ():
            if keys[i] is not None:
                self.cache.put(keys[i], scored.outputs[i].copy())
        return scored

    def _lookup(self, model: LoadedModel, item: _Item) -> tuple[list[int], list[Any]]:
        """The rows still to score, and each row's cache key (hits filled in)."""
        parsed = item.parsed
        n = len(parsed.matrix)
        keys: list[Any] = [None] * n
        todo: list[int] = []
        item.raw = _outputs(model, n)
        for i in range(n):
            if i not in parsed.enrich or self.cache_config.cache_enriched:
                keys[i] = (model.version, parsed.matrix[i].tobytes(), _entity_key(parsed, i))
                hit = self.cache.get(keys[i])
                if hit is not None:
                    item.raw[i] = hit
                    continue
            todo.append(i)
        self._hits.inc(n - len(todo))
        self._misses.inc(len(todo))
        return todo, keys

    @staticmethod
    def _explain(model: LoadedModel, rows: Matrix, options: Options) -> list[dict[str, float]]:
        contrib = model.contributions(rows)[:, : len(model.feature_names)]
        top = np.argsort(-np.abs(contrib), axis=1)[:, : options.top_k]
        return [
            {model.feature_names[j]: float(contrib[i, j]) for j in top[i]} for i in range(len(rows))
        ]

    def _audit_batches(
        self,
        deployment: _Deployment,
        items: Sequence[_Item],
        stamps: list[list[dict[str, datetime | None]]],
        out: list[Scored],
        done: list[int],
    ) -> list[AuditBatch]:
        """The audit rows of a model batch, one :class:`AuditBatch` per route (v1, v2):
        one per request cost more than its rows' inserts."""
        model = deployment.model
        now, clock = datetime.now(UTC), time.perf_counter()
        routes: dict[str, list[int]] = {}
        for k in done:
            routes.setdefault(items[k].route, []).append(k)
        batches = []
        for route, ks in routes.items():
            explained = [out[k].explanations for k in ks]
            batches.append(
                AuditBatch(
                    ts=now,
                    model=model.name,
                    version=model.version,
                    route=route,
                    latency_ms=[
                        (clock - items[k].started) * 1000.0 for k in ks for _ in range(items[k].n)
                    ],
                    feature_names=model.feature_names,
                    values=_values([items[k].parsed for k in ks]),
                    prediction_ids=[pid for k in ks for pid in out[k].ids],
                    scores=[score for k in ks for score in out[k].scores],
                    decisions=[d for k in ks for d in _audit_decisions(out[k])],
                    entity_keys=[keys for k in ks for keys in items[k].parsed.entity_rows],
                    feature_ts=[ts for k in ks for ts in stamps[k]],
                    explanations=None
                    if all(e is None for e in explained)
                    else [
                        e
                        for k, ex in zip(ks, explained, strict=True)
                        for e in (ex if ex is not None else [None] * items[k].n)
                    ],
                    event_ts=_event_times([items[k].parsed for k in ks]),
                    missing=None
                    if all(items[k].missing is None for k in ks)
                    else [m for k in ks for m in (items[k].missing or [[]] * items[k].n)],
                    outputs=None
                    if deployment.task == "binary"
                    else [o for k in ks for o in audit_outputs(out[k])],
                )
            )
        return batches


def _crashed(deployment: _Deployment, exc: Exception) -> Scored:
    model = deployment.model
    return Scored([], model.task, model.classes, _NO_OUTPUTS, None, None, {}, None, crash=exc)


def _outputs(model: LoadedModel, n: int) -> Matrix:
    if model.task == "multiclass":
        return np.full((n, len(model.classes)), np.nan)
    return np.full(n, np.nan)


def _values(parsed: list[ParsedInstances]) -> list[list[Any]]:
    """The rows' feature values as the audit log keeps them (NaN: null)."""
    if all(p.raw is None for p in parsed):
        matrices = [p.matrix for p in parsed]
        listed: list[list[Any]] = (
            np.vstack(matrices) if len(matrices) > 1 else matrices[0]
        ).tolist()
        return listed
    return [row for p in parsed for row in (p.raw if p.raw is not None else p.matrix.tolist())]


def _event_times(parsed: list[ParsedInstances]) -> list[datetime | None] | None:
    if all(p.event_ts is None for p in parsed):
        return None
    return [t for p in parsed for t in (p.event_ts or [None] * len(p.matrix))]


def _audit_decisions(scored: Scored) -> list[str]:
    """The audit log's decision: the policy's, the class of a multiclass model, or ''."""
    if scored.decisions is not None:
        return scored.decisions
    if scored.task == "multiclass":
        names = scored.classes
        return [names[j] for j in scored.outputs.argmax(axis=1).tolist()]
    return [""] * len(scored.ids)


def audit_outputs(scored: Scored) -> list[dict[str, Any]]:
    """Each row's task outputs beyond the score: ``value`` (regression), ``class`` and
    ``probabilities`` (multiclass)."""
    if scored.task == "regression":
        return [{"value": v} for v in scored.outputs.tolist()]
    names = scored.classes
    return [
        {
            "class": names[max(range(len(p)), key=p.__getitem__)],
            "probabilities": dict(zip(names, p, strict=True)),
        }
        for p in scored.outputs.tolist()
    ]


def _entity_key(parsed: ParsedInstances, i: int) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(parsed.entity_rows[i].items())) if i in parsed.enrich else ()
