"""One prediction as the audit log keeps it, and the frame readers return."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

__all__ = ["FRAME_COLUMNS", "AuditRecord", "Label", "records_frame", "utc"]

# The fixed columns of every frame a reader returns; one column per feature follows.
FRAME_COLUMNS = (
    "prediction_id",
    "ts",
    "model",
    "version",
    "route",
    "score",
    "decision",
    "latency_ms",
    "label",
    "label_ts",
    "served_at",
    "missing",
    "outputs",
    "tenant",
)
FeatureValue = float | int | str | bool | None


def utc(ts: datetime) -> datetime:
    """``ts`` as an aware UTC datetime (naive datetimes are taken to be UTC already)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Everything needed to explain, monitor and later label one prediction.

    ``ts`` is the event time of the prediction (the time windows select by; the serve
    time when the request gave none), ``served_at`` when the server answered (None in
    records written before it was kept).
    ``features`` are the values the model saw, in the model's feature order;
    ``feature_ts`` the event time of each enriched feature (absent for request fields);
    ``missing`` the features that had no value and were scored as null; ``outputs`` the
    task's outputs beyond the score (``{"class": "b", "probabilities": {...}}``,
    ``{"value": 3.2}``) or None; ``tenant`` the tenant of the model that answered
    (``default`` on a server without API keys, and for records written before tenants).
    ``label`` and ``label_ts`` are filled by readers once feedback arrived.
    """

    prediction_id: str
    ts: datetime
    model: str
    version: str
    route: str
    score: float
    decision: str
    latency_ms: float
    features: Mapping[str, FeatureValue]
    entity_keys: Mapping[str, FeatureValue] = field(default_factory=dict)
    feature_ts: Mapping[str, datetime | None] = field(default_factory=dict)
    explanation: Mapping[str, float] | None = None
    label: float | None = None
    label_ts: datetime | None = None
    served_at: datetime | None = None
    missing: tuple[str, ...] = ()
    outputs: Mapping[str, Any] | None = None
    tenant: str = "default"


@dataclass(frozen=True, slots=True)
class Label:
    """Delayed ground truth for one earlier prediction."""

    prediction_id: str
    label: float
    ts: datetime | None = None


def records_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The reader frame from flat rows holding ``FRAME_COLUMNS`` and a ``features`` dict.

    ``served_at`` is NaT, ``missing`` an empty list, ``outputs`` None and ``tenant``
    ``default`` where a row has none (rows written before they were kept). A feature whose
    name clashes with a fixed column is named ``feature:<name>``.
    """
    fixed = [
        {
            **{k: row[k] for k in FRAME_COLUMNS[:-4]},
            "served_at": row.get("served_at"),
            "missing": list(row.get("missing") or ()),
            "outputs": row.get("outputs"),
            "tenant": row.get("tenant") or "default",
        }
        for row in rows
    ]
    frame = pd.DataFrame.from_records(fixed, columns=list(FRAME_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["label_ts"] = pd.to_datetime(frame["label_ts"], utc=True)
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True)
    frame["label"] = pd.to_numeric(frame["label"]).astype("float64")
    frame["score"] = frame["score"].astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row["features"]))
    columns: dict[str, list[Any]] = {}
    for name in names:
        column = f"feature:{name}" if name in FRAME_COLUMNS else name
        columns[column] = [_nan_if_none(row["features"].get(name)) for row in rows]
    if columns:
        frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
    return frame


def _nan_if_none(value: Any) -> Any:
    return math.nan if value is None else value
