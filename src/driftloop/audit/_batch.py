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
from typing import Any

from driftloop.audit._record import AuditRecord, FeatureValue

__all__ = ["AuditBatch"]


@dataclass(frozen=True, slots=True)
class AuditBatch:
    """Rows sharing ``ts``, ``model``, ``version`` and ``route``; ``values[i]`` holds row
    i's feature values in the order of ``feature_names``; ``latency_ms`` is one figure
    for every row or one per row (rows of several requests).

    ``ts`` is when the server answered (one per batch). The optional per-row columns:
    ``event_ts`` the event time of each row (None, or a None entry: ``ts``), ``missing``
    the features each row had no value for, ``outputs`` each row's task outputs beyond
    the score (or None). Left None, a column costs the writer nothing. ``tenant`` is the
    tenant of the model that answered.
    """

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
    event_ts: Sequence[datetime | None] | None = None
    missing: Sequence[Sequence[str]] | None = None
    outputs: Sequence[Mapping[str, Any] | None] | None = None
    tenant: str = "default"

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def records(self) -> list[AuditRecord]:
        """One :class:`AuditRecord` per row (for logs without a batch insert)."""
        names, absent = self.feature_names, [None] * len(self)
        columns = zip(
            self.prediction_ids,
            absent if self.event_ts is None else self.event_ts,
            self.scores,
            self.decisions,
            self.values,
            self.entity_keys,
            self.feature_ts,
            self.explanations or absent,
            self.latencies(),
            absent if self.missing is None else self.missing,
            absent if self.outputs is None else self.outputs,
            strict=True,
        )
        return [
            AuditRecord(
                prediction_id=pid,
                ts=self.ts if event is None else event,
                model=self.model,
                version=self.version,
                route=self.route,
                score=score,
                decision=dec,
                latency_ms=latency,
                features=dict(zip(names, values, strict=True)),
                entity_keys=keys,
                feature_ts=stamps,
                explanation=expl,
                served_at=self.ts,
                missing=tuple(miss or ()),
                outputs=out,
                tenant=self.tenant,
            )
            for pid, event, score, dec, values, keys, stamps, expl, latency, miss, out in columns
        ]

    def latencies(self) -> Sequence[float]:
        """One latency per row."""
        latency = self.latency_ms
        return [float(latency)] * len(self) if isinstance(latency, int | float) else latency
