"""What the server passes between its parts: the models to serve, a request in a batch
(:class:`Item`), its answers (:class:`Scored`, :class:`Answer`), a loaded version
(:class:`Deployment`), prediction ids, and the audit rows of a batch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.audit import AuditBatch
from driftloop.core.config import DecisionPolicy, FallbackPolicy, MissingPolicy, TrafficPolicy
from driftloop.core.ids import new_id as next_id  # UUIDv7s: unguessable, time-ordered
from driftloop.registry import LoadedModel
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._breaker import CircuitBreaker
from driftloop.serving._errors import HttpError
from driftloop.serving._rules import RulesModel
from driftloop.serving._validation import Options, ParsedInstances, RowSpec

__all__ = [
    "NO_OPTIONS",
    "NO_OUTPUTS",
    "Answer",
    "Deployment",
    "Item",
    "Matrix",
    "Scored",
    "ServedModel",
    "audit_batches",
    "audit_outputs",
    "crashed",
    "entity_key",
    "explain",
    "next_id",
    "outputs_for",
]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ServedModel:
    """A model to serve: registry ``name`` at ``alias``, reachable as ``as_name``
    (default ``name``) and as ``name@alias``; ``entity_keys`` are the request fields
    that enrichment reads online features by; ``decision`` turns scores into decisions
    (none by default); ``missing`` says what a feature without a value does;
    ``fallback`` declares the rules and safe default that answer when no version can;
    ``traffic`` is the settings file's routing policy (a run-time change replaces it);
    ``tenant`` the tenant it belongs to (None: as the registry says, else ``default``)."""

    name: str
    alias: str = "champion"
    entity_keys: tuple[str, ...] = ()
    as_name: str | None = None
    decision: DecisionPolicy | None = None
    missing: MissingPolicy = field(default_factory=MissingPolicy)
    fallback: FallbackPolicy | None = None
    traffic: TrafficPolicy | None = None
    tenant: str | None = None

    @property
    def public_names(self) -> tuple[str, ...]:
        return (self.as_name or self.name, f"{self.name}@{self.alias}")


@dataclass(slots=True)
class Item:
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
    deployment: Any = None  # the version (Deployment) that scores it
    ids: list[str] | None = None  # given (a shadow's), else made when scored
    degraded: str | None = None  # why the answer is not the model's usual one
    fallback: bool = False  # the model cannot answer it: the fallback chain must
    heavy: bool = False  # batched alone and scored off the event loop (big, or explained)


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


class Deployment:
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
        self.batcher: DynamicBatcher[Item, Scored]  # the service's


NO_OUTPUTS: Matrix = np.empty(0)
NO_OPTIONS = Options()


def explain(model: LoadedModel, rows: Matrix, options: Options) -> list[dict[str, float]]:
    contrib = model.contributions(rows)[:, : len(model.feature_names)]
    top = np.argsort(-np.abs(contrib), axis=1)[:, : options.top_k]
    return [
        {model.feature_names[j]: float(contrib[i, j]) for j in top[i]} for i in range(len(rows))
    ]


def audit_batches(
    deployment: Deployment,
    items: Sequence[Item],
    stamps: list[list[dict[str, datetime | None]]],
    out: list[Scored],
    done: list[int],
    tenant: str = "default",
) -> list[AuditBatch]:
    """The audit rows of a model batch, one :class:`AuditBatch` per route (v1, v2):
    one per request cost more than its rows' inserts; each row of ``tenant``."""
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
                tenant=tenant,
            )
        )
    return batches


def crashed(deployment: Deployment, exc: Exception) -> Scored:
    model = deployment.model
    return Scored([], model.task, model.classes, NO_OUTPUTS, None, None, {}, None, crash=exc)


def outputs_for(model: LoadedModel, n: int) -> Matrix:
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


def entity_key(parsed: ParsedInstances, i: int) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(parsed.entity_rows[i].items())) if i in parsed.enrich else ()
