"""``driftloop score``: a registered model over a table, to Parquet and the audit log.

Backtesting monitoring on history: ``--audit`` writes every prediction with its event
time (the model's timestamp column) and, when the table has the label, the label too, so
``driftloop monitor run --now ...`` assesses the past windows as if they had been served.
"""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from driftloop.audit import AuditLog, AuditRecord, Label, open_audit_log
from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error, progress_bar, time_option
from driftloop.cli._train import model_store
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.registry import LoadedModel, Registry, parse_ref
from driftloop.stats import encode_labels
from driftloop.training import ScoredChunk, score_rows, training_source

__all__ = ["score"]


def _model(registry: Registry, ref: str) -> LoadedModel:
    name, _, alias = ref.partition("@")
    name, version = parse_ref(name)
    if version is None:
        version = registry.alias_version(name, alias or "champion")
    elif alias:
        raise InvalidParameterError(f"Give NAME:VERSION or NAME@ALIAS, not both: {ref!r}.")
    return registry.load(name, version)


@app.command()
def score(
    model: str = typer.Argument(..., help="NAME (its champion), NAME:VERSION or NAME@ALIAS."),
    data: str | None = typer.Option(
        None, "--data", help="Rows to score (default: the model's data in driftloop.toml)."
    ),
    out: Path = typer.Option(Path("predictions.parquet"), "--out", "-o", help="Parquet file."),
    start: str | None = typer.Option(None, help="Only rows from this event time (ISO)."),
    end: str | None = typer.Option(None, help="Only rows before this event time (ISO)."),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="Also write the predictions (and labels) to the audit log.",
        metavar="",
    ),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Score a table with a registered model, vectorised, in chunks, to Parquet."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        registry = Registry.from_settings(settings)
        try:
            loaded = _model(registry, model)
        finally:
            registry.close()
        config = settings.model(loaded.name)
        spec = data or config.data
        if not spec:
            raise InvalidParameterError(
                f"No rows to score: pass --data, or set data in [models.{loaded.name}]."
            )
        _must_exist(spec, settings.root)
        rows = training_source(spec, root=settings.root).window(
            loaded.signature.timestamp,
            start=time_option(start, "--start"),
            end=time_option(end, "--end"),
        )
        store = model_store(settings, config.model_copy(update={"store_features": _stored(loaded)}))
        out.parent.mkdir(parents=True, exist_ok=True)
        log = open_audit_log(settings.audit.url, root=settings.root) if audit else None
        owners = {str(m["name"]): str(m["tenant"]) for m in registry.list_models()}
        tenant = owners.get(loaded.name, "default")  # the audit rows are the model's tenant's
        started, writer, written = time.perf_counter(), None, 0
        try:
            with progress_bar() as bar:
                task = bar.add_task(f"scoring with {loaded.name}:{loaded.version}", total=len(rows))
                for chunk in score_rows(
                    loaded,
                    rows,
                    store=store,
                    decision=config.decision,
                    progress=lambda n: bar.update(task, completed=n),
                ):
                    table = pa.Table.from_pandas(chunk.outputs, preserve_index=False)
                    writer = writer or pq.ParquetWriter(out, table.schema)
                    writer.write_table(table)
                    if log is not None:
                        written += _audit(log, loaded, chunk, tenant)
        finally:
            if writer is not None:
                writer.close()
            if log is not None:
                log.close()
            if store is not None:
                store.close()
    seconds = time.perf_counter() - started
    console.print(
        f"Scored {len(rows):,} rows with {loaded.name}:{loaded.version} ({loaded.runtime}) in "
        f"{seconds:.1f} s ({len(rows) / max(seconds, 1e-9):,.0f} rows/s); wrote {out}."
    )
    if audit:
        console.print(f"Audit log: {written:,} predictions with their event times.")


def _must_exist(spec: str, root: Path) -> None:
    """A file or folder to score must exist (said here: the reader would call it training
    data); queries and globs are the reader's to check."""
    if spec.lower().startswith("duckdb:") or any(c in spec for c in "*?["):
        return
    path = Path(spec) if Path(spec).is_absolute() else root / spec
    if not path.exists():
        raise NotFoundError(f"Data to score {spec} does not exist (looked in {path}).")


def _stored(model: LoadedModel) -> tuple[str, ...]:
    """Store features the model reads (so the store is opened only when needed)."""
    return tuple(f.name for f in model.signature.features if f.view is not None)


def _audit(log: AuditLog, model: LoadedModel, chunk: ScoredChunk, tenant: str) -> int:
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
                tenant=tenant,
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
