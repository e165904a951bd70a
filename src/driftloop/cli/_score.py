"""``driftloop score``: a registered model over a table, to Parquet and the audit log.

Backtesting monitoring on history: ``--audit`` writes every prediction with its event
time (the model's timestamp column) and, when the table has the label, the label too, so
``driftloop monitor run --now ...`` assesses the past windows as if they had been served.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from driftloop.audit import open_audit_log
from driftloop.cli._app import app
from driftloop.cli._batch import BatchScorer, audit_chunk, stored_features
from driftloop.cli._console import console, exit_on_error, progress_bar, time_option
from driftloop.cli._train import model_store
from driftloop.compute import open_engine
from driftloop.core.config import Settings, load_settings
from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.registry import LoadedModel, Registry, parse_ref
from driftloop.training import CHUNK_ROWS, file_batches, score_rows, training_source

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
    engine: str | None = typer.Option(
        None,
        "--engine",
        help="local (this process) or ray (Ray Data on [compute] address; --out is a folder "
        "of Parquet parts). Default: [compute] engine.",
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
        if (engine or settings.compute.engine) != "local":
            _score_on_ray(
                settings,
                loaded,
                spec,
                out,
                engine=engine or settings.compute.engine,
                start=time_option(start, "--start"),
                end=time_option(end, "--end"),
                audit=audit,
            )
            return
        if "://" in spec:
            raise InvalidParameterError(
                f"--data {spec}: the local engine reads files on this machine; score a URI "
                "with --engine ray (Ray Data reads it through pyarrow)."
            )
        rows = training_source(spec, root=settings.root).window(
            loaded.signature.timestamp,
            start=time_option(start, "--start"),
            end=time_option(end, "--end"),
        )
        update = {"store_features": stored_features(loaded)}
        store = model_store(settings, config.model_copy(update=update))
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
                        written += audit_chunk(log, loaded, chunk, tenant)
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


def _score_on_ray(
    settings: Settings,
    loaded: LoadedModel,
    spec: str,
    out: Path,
    *,
    engine: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    audit: bool,
) -> None:
    """Map the version over the Parquet or CSV rows with Ray Data: one scorer per worker
    (model loaded once), parts written by the workers into a fresh folder that then
    replaces ``out``."""
    if engine != "ray":
        raise InvalidParameterError(f"--engine must be 'local' or 'ray', got {engine!r}.")
    source = file_batches(spec, settings.root)
    out = out.resolve()  # the workers write the parts, from folders of their own
    _replaceable(out)
    scratch = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
    compute = settings.compute.model_copy(update={"engine": "ray"})
    runner = open_engine(compute)
    scorer = BatchScorer(settings, loaded.name, int(loaded.version), audit, start, end)
    started = time.perf_counter()
    try:
        console.print(f"Scoring {spec} with {loaded.name}:{loaded.version} on Ray ...")
        rows = runner.map_batches(scorer, source, scratch, batch_rows=CHUNK_ROWS)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        runner.close()
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    scratch.rename(out)
    seconds = time.perf_counter() - started
    console.print(
        f"Scored {rows:,} rows with {loaded.name}:{loaded.version} ({loaded.runtime}) on Ray "
        f"in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s); wrote {out}/."
    )
    if audit:
        console.print(f"Audit log: {rows:,} predictions with their event times.")


def _replaceable(out: Path) -> None:
    """``out`` may be replaced: absent, a file, or a folder of Parquet parts only."""
    if out.is_dir() and any(not p.name.endswith(".parquet") for p in out.iterdir()):
        raise InvalidParameterError(
            f"--out {out} is a folder holding other files than Parquet parts; give a new "
            "folder (its parts are replaced on every run)."
        )


def _must_exist(spec: str, root: Path) -> None:
    """A file or folder to score must exist (said here: the reader would call it training
    data); queries, globs and URIs are the reader's to check."""
    if spec.lower().startswith("duckdb:") or "://" in spec or any(c in spec for c in "*?["):
        return
    path = Path(spec) if Path(spec).is_absolute() else root / spec
    if not path.exists():
        raise NotFoundError(f"Data to score {spec} does not exist (looked in {path}).")
