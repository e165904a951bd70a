"""What ``driftloop score`` does per batch of rows, wherever the batch is scored: the
model's outputs, and the audit records of the predictions (and labels) with ``--audit``.

:class:`BatchScorer` is built once per worker (a Ray Data actor with ``--engine ray``):
it loads the registered version from the registry, opens the feature store and the audit
log the settings name, and maps Arrow batches to Arrow outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from driftloop.audit import AuditLog, AuditRecord, Label, open_audit_log
from driftloop.core.config import ComputeConfig, Settings
from driftloop.registry import LoadedModel, Registry
from driftloop.stats import encode_labels
from driftloop.training import ScoredChunk, score_rows, training_source

__all__ = ["BatchScorer", "audit_chunk", "stored_features"]


@dataclass(frozen=True)
class BatchScorer:
    """Builds the batch function of one registered version (see the module docs)."""

    settings: Settings
    model: str
    version: int
    audit: bool = False
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def __call__(self) -> Any:
        import pyarrow as pa

        from driftloop.cli._train import model_store

        registry = Registry.from_settings(self.settings)
        try:
            loaded = registry.load(self.model, self.version)
        finally:
            registry.close()
        config = self.settings.model(loaded.name)
        # This runs on a worker: its store features are joined here, in process (a nested
        # Ray job would wait for CPUs the scorers themselves hold).
        local = self.settings.model_copy(update={"compute": ComputeConfig()})
        store = model_store(
            local, config.model_copy(update={"store_features": stored_features(loaded)})
        )
        log = None
        if self.audit:
            log = open_audit_log(self.settings.audit.url, root=self.settings.root)
        timestamp = loaded.signature.timestamp

        def score_batch(batch: Any) -> Any:
            # Through DuckDB, as the local command reads its rows: the same dtypes and the
            # same time window rule.
            rows = training_source(batch.to_pandas(), root=self.settings.root).window(
                timestamp, start=self.start, end=self.end
            )
            outputs = []
            for chunk in score_rows(loaded, rows, store=store, decision=config.decision):
                outputs.append(chunk.outputs)
                if log is not None:
                    audit_chunk(log, loaded, chunk)
            if not outputs:
                return pa.table({})
            return pa.Table.from_pandas(pd.concat(outputs), preserve_index=False)

        return score_batch


def stored_features(model: LoadedModel) -> tuple[str, ...]:
    """Store features the model reads (so the store is opened only when needed)."""
    return tuple(f.name for f in model.signature.features if f.view is not None)


def audit_chunk(log: AuditLog, model: LoadedModel, chunk: ScoredChunk) -> int:
    """The chunk's predictions (route ``batch``) with their event times, then its labels."""
    signature, outputs, rows = model.signature, chunk.outputs, chunk.rows
    now = datetime.now(UTC)
    times = (
        pd.to_datetime(rows[signature.timestamp], utc=True)
        if signature.timestamp in rows.columns
        else pd.Series([now] * len(rows))
    )
    ids = (
        rows[signature.id].astype(str).to_numpy()
        if signature.id is not None and signature.id in rows.columns
        else None
    )
    features = chunk.features.astype(object).where(chunk.features.notna(), None)
    task_outputs = _task_outputs(model, outputs)
    records = []
    for i, values in enumerate(features.to_dict("records")):
        pid = f"batch-{model.name}-{model.version}-{ids[i]}" if ids is not None else None
        records.append(
            AuditRecord(
                prediction_id=pid or f"batch-{model.name}-{model.version}-{now.timestamp()}-{i}",
                ts=times.iloc[i].to_pydatetime(),
                model=model.name,
                version=model.version,
                route="batch",
                score=float(outputs["score"].iloc[i]),
                decision=str(outputs["decision"].iloc[i]) if "decision" in outputs else "",
                latency_ms=0.0,
                features={str(k): _plain(v) for k, v in values.items()},
                entity_keys={signature.id: str(ids[i])} if ids is not None and signature.id else {},
                missing=tuple(str(k) for k, v in values.items() if v is None),
                outputs=task_outputs[i] if task_outputs is not None else None,
            )
        )
    log.write(records)
    label = signature.label
    if label and label in rows.columns:
        known = rows[label].notna().to_numpy()
        y, _ = encode_labels(rows.loc[known, label], model.task, signature.classes or None)
        picked = [r for r, k in zip(records, known, strict=True) if k]
        log.add_labels(
            Label(r.prediction_id, float(v), r.ts) for r, v in zip(picked, y, strict=True)
        )
    return len(records)


def _task_outputs(model: LoadedModel, outputs: pd.DataFrame) -> list[dict[str, Any]] | None:
    """Per row, the outputs beyond the score as the server audits them: a multiclass
    model's class and probabilities (what monitoring judges log loss and the class mix
    by), a regression model's value."""
    if model.task == "multiclass":
        classes = [str(c) for c in model.classes]
        probabilities = outputs[[f"probability:{c}" for c in classes]].to_numpy(np.float64)
        return [
            {"class": str(c), "probabilities": dict(zip(classes, map(float, p), strict=True))}
            for c, p in zip(outputs["class"], probabilities, strict=True)
        ]
    if model.task == "regression":
        return [{"value": float(v)} for v in outputs["value"]]
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
