"""One served model: its current version, batcher, cache, enrichment and audit trail."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.audit import AuditBatch, GroupCommitWriter
from driftloop.core.config import CacheConfig, DecisionConfig
from driftloop.registry import LoadedModel
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._cache import PredictionCache
from driftloop.serving._features import EnrichedRow, FeatureSource
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._model import ModelSource
from driftloop.serving._validation import Options, ParsedInstances, RowSpec

__all__ = ["Scored", "ServedModel", "Service"]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ServedModel:
    """A model to serve: registry ``name`` at ``alias``, reachable as ``as_name``
    (default ``name``) and as ``name@alias``; ``entity_keys`` are the request fields
    that enrichment reads online features by."""

    name: str
    alias: str = "champion"
    entity_keys: tuple[str, ...] = ()
    as_name: str | None = None

    @property
    def public_names(self) -> tuple[str, ...]:
        return (self.as_name or self.name, f"{self.name}@{self.alias}")


@dataclass(slots=True)
class _Item:
    """One request in a batch: all its rows, which need the model, what the cache knew."""

    rows: Matrix
    todo: list[int]
    scores: Matrix
    entity_rows: list[dict[str, Any]]
    enrich: dict[int, tuple[str, ...]]
    options: Options
    route: str
    started: float


@dataclass
class Scored:
    """One request's answers, in columns."""

    ids: list[str]
    scores: list[float]
    decisions: list[str]
    explanations: list[dict[str, float]] | None


@dataclass
class _Deployment:
    model: LoadedModel
    batcher: DynamicBatcher[_Item, Scored]
    spec: RowSpec


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
        decision: DecisionConfig,
        cache: CacheConfig,
        max_rows: int,
        max_wait_s: float,
    ) -> None:
        self.served = served
        self.source = source
        self.features = features
        self.writer = writer
        self.metrics = metrics
        self.decision = decision
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
        model.predict(np.full((1, len(model.feature_names)), np.nan))  # warm up
        batcher: DynamicBatcher[_Item, Scored] = DynamicBatcher(
            lambda items: self._run(model, items),
            size=lambda item: len(item.todo),
            max_rows=self.max_rows,
            max_wait_s=self.max_wait_s,
        )
        old, self.current = (
            self.current,
            _Deployment(
                model, batcher, RowSpec(tuple(model.feature_names), self.served.entity_keys)
            ),
        )
        if old is not None:
            self.metrics.model_loaded.labels(
                self.served.name, old.model.version, old.model.runtime
            ).set(0)
        self.metrics.model_loaded.labels(self.served.name, version, model.runtime).set(1)
        return True

    # -- one batch: one feature read, one model call, one audit commit -------------------
    async def _run(self, model: LoadedModel, items: Sequence[_Item]) -> list[Scored]:
        wanted = [(k, i, f) for k, it in enumerate(items) for i, f in it.enrich.items()]
        stamps: list[list[dict[str, datetime | None]]]
        if wanted and self.features is not None:
            stamps = [[{} for _ in range(len(it.rows))] for it in items]
            await self._enrich(model, items, wanted, stamps)
        else:
            stamps = [[{}] * len(it.rows) for it in items]  # shared, never written
        parts = [
            it.rows if len(it.todo) == len(it.rows) else it.rows[it.todo] for it in items if it.todo
        ]
        scored: list[list[float]] = []  # each item's scores, listed
        if parts:
            rows = np.vstack(parts) if len(parts) > 1 else parts[0]
            self._batch_rows.observe(len(rows))
            scores = model.outputs(rows).score
            listed, start = scores.tolist(), 0
            for it in items:
                n = len(it.todo)
                if n == len(it.rows):  # no cache hit: the model's scores are the answer
                    scored.append(listed[start : start + n])
                else:
                    if n:
                        it.scores[it.todo] = scores[start : start + n]
                    scored.append(it.scores.tolist())
                start += n
        else:  # every row came from the cache
            scored = [it.scores.tolist() for it in items]
        out: list[Scored] = []
        approve, decline = self.decision.approve_below, self.decision.decline_above
        for it, listed in zip(items, scored, strict=True):
            ids = [next_id() for _ in listed]
            decisions = [
                "approve" if s < approve else "decline" if s > decline else "review" for s in listed
            ]
            explained = self._explain(model, it.rows, it.options) if it.options.explain else None
            out.append(Scored(ids, listed, decisions, explained))
        if self.writer is not None:  # durable before any caller is answered
            await self.writer.awrite_batches(self._audit_batches(model, items, stamps, out))
        self._counted(model).inc(sum(len(it.rows) for it in items))
        return out

    def _counted(self, model: LoadedModel) -> Any:
        """The predictions counter of ``model``'s version (label lookups cost per call)."""
        if self._predictions is None or self._predictions[0] != model.version:
            child = self.metrics.predictions.labels(self.served.name, model.version)
            self._predictions = (model.version, child)
        return self._predictions[1]

    async def _enrich(
        self,
        model: LoadedModel,
        items: Sequence[_Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> None:
        assert self.features is not None
        names = sorted({name for _, _, fs in wanted for name in fs})
        features = model.feature_names
        entity_rows = [
            {
                **{
                    f: v
                    for f, v in zip(features, items[k].rows[i].tolist(), strict=True)
                    if f not in missing and v == v
                },
                **items[k].entity_rows[i],
            }
            for k, i, missing in wanted
        ]  # request values too: on-demand features may use them
        read = await asyncio.to_thread(self.features.read, entity_rows, names)
        self._fill(model, items, wanted, read, stamps)

    @staticmethod
    def _fill(
        model: LoadedModel,
        items: Sequence[_Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        read: list[EnrichedRow],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> None:
        column = {name: j for j, name in enumerate(model.feature_names)}
        for (k, i, names), enriched in zip(wanted, read, strict=True):
            for name in names:
                value = enriched.values.get(name)
                if value is not None and not isinstance(value, bool | str):
                    items[k].rows[i, column[name]] = float(value)
                stamps[k][i][name] = enriched.timestamps.get(name)

    # -- one request ---------------------------------------------------------------------
    async def predict(
        self, parsed: ParsedInstances, options: Options, *, route: str, started: float
    ) -> tuple[LoadedModel, Scored]:
        deployment = self.current
        assert deployment is not None, "predict before the model was loaded"
        model = deployment.model
        n = len(parsed.matrix)
        keys: list[Any] = []
        if self.cache_config.enabled and self.cache.max_entries > 0:
            scores, todo, keys = self._lookup(model, parsed)
        else:
            scores, todo = np.empty(n), list(range(n))  # every row is scored
        item = _Item(
            parsed.matrix,
            todo,
            scores,
            parsed.entity_rows,
            parsed.enrich,
            options,
            route,
            started,
        )  # fmt: skip  (the matrix is this request's own: parse_instances built it)
        scored = await deployment.batcher.submit(item)
        for i in todo if keys else ():
            if keys[i] is not None:
                self.cache.put(keys[i], scored.scores[i])
        return model, scored

    def _lookup(
        self, model: LoadedModel, parsed: ParsedInstances
    ) -> tuple[Matrix, list[int], list[Any]]:
        """Scores the cache knows, the rows still to score, and each row's cache key."""
        n = len(parsed.matrix)
        scores = np.full(n, np.nan)
        keys: list[Any] = [None] * n
        todo: list[int] = []
        for i in range(n):
            if i not in parsed.enrich or self.cache_config.cache_enriched:
                keys[i] = (model.version, parsed.matrix[i].tobytes(), _entity_key(parsed, i))
                hit = self.cache.get(keys[i])
                if hit is not None:
                    scores[i] = hit
                    continue
            todo.append(i)
        self._hits.inc(n - len(todo))
        self._misses.inc(len(todo))
        return scores, todo, keys

    @staticmethod
    def _explain(model: LoadedModel, rows: Matrix, options: Options) -> list[dict[str, float]]:
        contrib = model.contributions(rows)[:, : len(model.feature_names)]
        top = np.argsort(-np.abs(contrib), axis=1)[:, : options.top_k]
        return [
            {model.feature_names[j]: float(contrib[i, j]) for j in top[i]} for i in range(len(rows))
        ]

    @staticmethod
    def _audit_batches(
        model: LoadedModel,
        items: Sequence[_Item],
        stamps: list[list[dict[str, datetime | None]]],
        out: list[Scored],
    ) -> list[AuditBatch]:
        """The audit rows of a model batch, one :class:`AuditBatch` per route (v1, v2):
        one per request cost more than its rows' inserts."""
        now, clock = datetime.now(UTC), time.perf_counter()
        routes: dict[str, list[int]] = {}
        for k, it in enumerate(items):
            routes.setdefault(it.route, []).append(k)
        batches = []
        for route, ks in routes.items():
            rows = [items[k].rows for k in ks]
            explained = [out[k].explanations for k in ks]
            batches.append(
                AuditBatch(
                    ts=now,
                    model=model.name,
                    version=model.version,
                    route=route,
                    latency_ms=[
                        (clock - items[k].started) * 1000.0
                        for k in ks
                        for _ in range(len(items[k].rows))
                    ],
                    feature_names=model.feature_names,
                    values=(np.vstack(rows) if len(rows) > 1 else rows[0]).tolist(),  # NaN: null
                    prediction_ids=[pid for k in ks for pid in out[k].ids],
                    scores=[score for k in ks for score in out[k].scores],
                    decisions=[decision for k in ks for decision in out[k].decisions],
                    entity_keys=[keys for k in ks for keys in items[k].entity_rows],
                    feature_ts=[ts for k in ks for ts in stamps[k]],
                    explanations=None
                    if all(e is None for e in explained)
                    else [
                        e
                        for k, ex in zip(ks, explained, strict=True)
                        for e in (ex if ex is not None else [None] * len(items[k].rows))
                    ],
                )
            )
        return batches


def _entity_key(parsed: ParsedInstances, i: int) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(parsed.entity_rows[i].items())) if i in parsed.enrich else ()
