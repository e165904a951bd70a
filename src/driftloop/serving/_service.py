"""One served model: its current version, batcher, cache, enrichment, missing-value policy
and audit trail."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.audit import AuditBatch, GroupCommitWriter
from driftloop.core.config import CacheConfig, DecisionPolicy, MissingPolicy
from driftloop.core.errors import InvalidParameterError
from driftloop.registry import InvalidValue, LoadedModel
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._cache import PredictionCache
from driftloop.serving._errors import HttpError, Violation
from driftloop.serving._features import EnrichedRow, FeatureSource
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._validation import Options, ParsedInstances, RowSpec, audited

__all__ = ["Scored", "ServedModel", "Service"]

log = logging.getLogger(__name__)
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ServedModel:
    """A model to serve: registry ``name`` at ``alias``, reachable as ``as_name``
    (default ``name``) and as ``name@alias``; ``entity_keys`` are the request fields
    that enrichment reads online features by; ``decision`` turns scores into decisions
    (none by default); ``missing`` says what a feature without a value does."""

    name: str
    alias: str = "champion"
    entity_keys: tuple[str, ...] = ()
    as_name: str | None = None
    decision: DecisionPolicy | None = None
    missing: MissingPolicy = field(default_factory=MissingPolicy)

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

    @property
    def scores(self) -> list[float]:
        """One number per row: the positive probability, the top class's, or the value."""
        top = self.outputs.max(axis=1) if self.outputs.ndim == 2 else self.outputs
        values: list[float] = top.tolist()
        return values


@dataclass
class _Deployment:
    model: LoadedModel
    batcher: DynamicBatcher[_Item, Scored]
    spec: RowSpec
    defaults: dict[int, tuple[float, Any]]  # column -> (encoded, raw) declared default

    def __post_init__(self) -> None:
        self.task = self.model.task  # read per request: a plain attribute


_NO_OUTPUTS: Matrix = np.empty(0)


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
    """Serves one :class:`ServedModel`; swaps versions when its alias moves."""

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
        self.current: _Deployment | None = None
        self._hits = metrics.cache_hits.labels(served.name)
        self._misses = metrics.cache_misses.labels(served.name)
        self._batch_rows = metrics.batch_rows.labels(served.name)
        self._predictions: tuple[str, Any] | None = None

    # -- versions ---------------------------------------------------------------------
    async def refresh(self) -> bool:
        """Follow the alias: load a new version off the loop, then swap. True if swapped."""
        version = await asyncio.to_thread(self.source.resolve, self.served.name, self.served.alias)
        if self.current is not None and self.current.model.version == version:
            return False
        model = await asyncio.to_thread(self.source.load, self.served.name, version)
        spec = RowSpec.of(model.signature, self.served.entity_keys)
        defaults = self._defaults(model, spec)
        model.predict(np.full((1, len(model.feature_names)), np.nan))  # warm up
        batcher: DynamicBatcher[_Item, Scored] = DynamicBatcher(
            lambda items: self._run(model, items),
            size=lambda item: len(item.todo),
            max_rows=self.max_rows,
            max_wait_s=self.max_wait_s,
        )
        old, self.current = self.current, _Deployment(model, batcher, spec, defaults)
        if old is not None:
            self.metrics.model_loaded.labels(
                self.served.name, old.model.version, old.model.runtime
            ).set(0)
        self.metrics.model_loaded.labels(self.served.name, version, model.runtime).set(1)
        return True

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

    # -- one batch: one feature read, one model call, one audit commit -------------------
    async def _run(self, model: LoadedModel, items: Sequence[_Item]) -> list[Scored]:
        deployment = self.current
        assert deployment is not None
        wanted = [(k, i, f) for k, it in enumerate(items) for i, f in it.parsed.enrich.items()]
        stamps: list[list[dict[str, datetime | None]]]
        if wanted and self.features is not None:
            stamps = [[{} for _ in range(it.n)] for it in items]
            await self._enrich(deployment, items, wanted, stamps)
        else:
            stamps = [[{}] * it.n for it in items]  # shared, never written
        for it in items:
            if it.parsed.enrich:
                it.error = self._settle(deployment, it, it.parsed.enrich)
        live = [it for it in items if it.error is None]
        parts = [
            it.parsed.matrix if len(it.todo) == it.n else it.parsed.matrix[it.todo]
            for it in live
            if it.todo
        ]
        if parts:
            rows = np.vstack(parts) if len(parts) > 1 else parts[0]
            self._batch_rows.observe(len(rows))
            raw = model.predict(rows)
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
        done = [k for k, it in enumerate(items) if it.error is None]
        if self.writer is not None and done:  # durable before any caller is answered
            await self.writer.awrite_batches(
                self._audit_batches(deployment, items, stamps, out, done)
            )
        self._counted(model).inc(sum(items[k].n for k in done))
        return out

    def _scored(self, deployment: _Deployment, it: _Item) -> Scored:
        model = deployment.model
        task = deployment.task
        raw = it.raw if it.raw is not None else _NO_OUTPUTS
        if it.error is not None:
            return Scored([], task, model.classes, raw, None, None, {}, None, it.error)
        policy = self.served.decision
        decisions = None
        if policy is not None and task != "multiclass":
            decide = policy.decide
            decisions = [decide(s) for s in raw.tolist()]
        explained = (
            self._explain(model, it.parsed.matrix, it.options) if it.options.explain else None
        )
        return Scored(
            [next_id() for _ in range(it.n)],
            task,
            model.classes,
            raw,
            decisions,
            it.missing,
            it.parsed.unseen,
            explained,
        )

    def _counted(self, model: LoadedModel) -> Any:
        """The predictions counter of ``model``'s version (label lookups cost per call)."""
        if self._predictions is None or self._predictions[0] != model.version:
            child = self.metrics.predictions.labels(self.served.name, model.version)
            self._predictions = (model.version, child)
        return self._predictions[1]

    async def _enrich(
        self,
        deployment: _Deployment,
        items: Sequence[_Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> None:
        assert self.features is not None
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
        read = await asyncio.to_thread(self.features.read, entity_rows, names)
        self._fill(deployment, items, wanted, read, stamps)

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
    async def predict(
        self, parsed: ParsedInstances, options: Options, *, route: str, started: float
    ) -> tuple[LoadedModel, Scored]:
        deployment = self.current
        assert deployment is not None, "predict before the model was loaded"
        model = deployment.model
        n = len(parsed.matrix)
        item = _Item(parsed, n, [], None, None, options, route, started)
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
        if scored.error is not None:
            raise scored.error
        for i in item.todo if keys else ():
            if keys[i] is not None:
                self.cache.put(keys[i], scored.outputs[i].copy())
        return model, scored

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
