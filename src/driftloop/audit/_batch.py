"""Predictions in columns: what the model server hands the writer, one per model batch.

One :class:`AuditRecord` per row costs more than the row's insert; a batch keeps the
shared values once (time, model, version, route, feature names) and the rest as lists,
and the SQL logs turn it straight into insert tuples.

>>> from datetime import UTC, datetime
>>> batch = AuditBatch(datetime(2026, 1, 1, tzinfo=UTC), "fraud", "3", "v1", 1.5,
...     ("amount",), [[12.0]], ["p1"], [0.1], ["approve"], [{}], [{}])
>>> [(r.prediction_id, r.features) for r in batch.records()]
[('p1', {'amount': 12.0})]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from driftloop.audit._record import AuditRecord, FeatureValue

__all__ = ["AuditBatch"]


@dataclass(frozen=True, slots=True)
class AuditBatch:
    """Rows sharing ``ts``, ``model``, ``version`` and ``route``; ``values[i]`` holds row
    i's feature values in the order of ``feature_names``; ``latency_ms`` is one figure
    for every row or one per row (rows of several requests)."""

    ts: datetime
    model: str
    version: str
    route: str
    latency_ms: float | Sequence[float]
    feature_names: Sequence[str]
    values: Sequence[Sequence[FeatureValue]]
    prediction_ids: Sequence[str]
    scores: Sequence[float]
    decisions: Sequence[str]
    entity_keys: Sequence[Mapping[str, FeatureValue]]
    feature_ts: Sequence[Mapping[str, datetime | None]]
    explanations: Sequence[Mapping[str, float] | None] | None = None

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def records(self) -> list[AuditRecord]:
        """One :class:`AuditRecord` per row (for logs without a batch insert)."""
        names = self.feature_names
        explanations = self.explanations or [None] * len(self)
        return [
            AuditRecord(
                prediction_id=pid,
                ts=self.ts,
                model=self.model,
                version=self.version,
                route=self.route,
                score=score,
                decision=decision,
                latency_ms=latency,
                features=dict(zip(names, values, strict=True)),
                entity_keys=keys,
                feature_ts=stamps,
                explanation=explanation,
            )
            for pid, score, decision, values, keys, stamps, explanation, latency in zip(
                self.prediction_ids,
                self.scores,
                self.decisions,
                self.values,
                self.entity_keys,
                self.feature_ts,
                explanations,
                self.latencies(),
                strict=True,
            )
        ]

    def latencies(self) -> Sequence[float]:
        """One latency per row."""
        latency = self.latency_ms
        return [float(latency)] * len(self) if isinstance(latency, int | float) else latency
