"""``driftloop train``: run a training pipeline with progress per step."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, err_console, exit_on_error
from driftloop.core.config import Settings, load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.features import FeatureStore, load_definitions, transaction_feature_store
from driftloop.training import PipelineResult, feature_store_frame, train_and_promote

__all__ = ["print_training", "run_training", "training_features"]


def run_training(
    settings: Settings,
    data_dir: Path,
    *,
    name: str = "fraud",
    promote: bool = True,
    **options: Any,
) -> tuple[PipelineResult, bool]:
    """Train with a rich progress bar over the steps; promote to champion when gates pass."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def on_step(step: str, status: str, index: int, total: int) -> None:
            bar.update(task, description=f"step {index + 1}/{total}: {step} ({status})")

        return train_and_promote(
            settings,
            data_dir,
            name=name,
            alias="champion" if promote else None,
            who=os.environ.get("USER", "driftloop"),
            on_step=on_step,
            **options,
        )


def print_training(result: PipelineResult, promoted: bool) -> None:
    """Steps (ran or cached, seconds), test metrics, gate checks and the outcome."""
    steps = Table(title="Pipeline steps")
    for column in ("step", "status", "seconds"):
        steps.add_column(column)
    for step in result.steps:
        steps.add_row(step.name, step.status, f"{step.seconds:.2f}")
    console.print(steps)
    metrics = Table(title="Held-out test window")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, value in result.metrics.items():
        if isinstance(value, int | float):
            metrics.add_row(key, f"{value:,.0f}" if key == "rows" else f"{value:.4f}")
    console.print(metrics)
    gates = Table(title="Release gates")
    for column in ("check", "result", "value", "threshold"):
        gates.add_column(column)
    for check in result.gate_report.get("checks", []):
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        gates.add_row(check["name"], mark, str(check["value"]), str(check["threshold"]))
    console.print(gates)
    if result.version is None:
        return
    ref = result.version.ref
    if promoted:
        console.print(f"Registered [bold]{ref}[/] and promoted it to [bold]champion[/].")
    elif result.gate_report.get("passed"):
        console.print(f"Registered [bold]{ref}[/] (alias challenger).")
    else:
        console.print(f"Registered [bold]{ref}[/]; release gates [red]failed[/], not promoted.")
    keys = result.version.lineage.get("entity_keys") or []
    if keys:
        flags = " ".join(f"--entity-key {k}" for k in keys)
        console.print(f"[dim]Serve it with: driftloop serve -m {result.version.name} {flags}[/]")


def _time(value: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(value) if value else None


def training_features(
    settings: Settings, data: Path, mode: str | None, features: list[str]
) -> tuple[str, FeatureStore | None, dict[str, Any]]:
    """Which training frame ``driftloop train`` uses: a description, the store to close
    afterwards and the pipeline options.

    ``mode`` None picks the feature store when the project has a ``features.py`` (the
    features it serves with ``driftloop serve --entity-key``, so training and serving
    read the same definitions), else the per-row frame (a bare data folder has no
    feature definitions to serve from). ``store`` without ``features.py`` uses the
    example definitions over ``data``.
    """
    if mode not in (None, "store", "rows"):
        raise InvalidParameterError(f"--features must be 'store' or 'rows', got {mode!r}.")
    definitions_file = settings.root / "features.py"
    if mode == "rows" or (mode is None and not definitions_file.is_file()):
        if features:
            raise InvalidParameterError(
                "--feature picks feature-store features; the per-row frame (--features rows) "
                "has a fixed set."
            )
        return "per-row transaction features", None, {}
    if definitions_file.is_file():
        store = FeatureStore(settings, definitions=load_definitions(definitions_file))
        where = str(definitions_file)
    else:
        store = transaction_feature_store(data.resolve(), settings=settings)
        where = f"the example definitions over {data}"
    try:
        frame_fn = feature_store_frame(store, features or None)
    except BaseException:
        store.close()
        raise
    return f"feature store ({where})", store, {"training_frame": frame_fn}


@app.command()
def train(
    pipeline: str = typer.Option("fraud", "--pipeline", help="Pipeline (and model) name."),
    data: Path = typer.Option(Path("data"), "--data", help="Simulator data folder."),
    features_mode: str | None = typer.Option(
        None,
        "--features",
        help="Training set from the feature 'store' (point in time, as served) or per-'rows' "
        "features. Default: store when the project has a features.py, else rows.",
    ),
    feature: list[str] = typer.Option(
        [], "--feature", help="Feature-store feature to train on (repeatable; default: all)."
    ),
    start: str | None = typer.Option(None, help="Training window start (ISO date/time)."),
    end: str | None = typer.Option(None, help="Training window end, exclusive."),
    search_trials: int = typer.Option(0, help="Optuna trials (0: no search)."),
    search_timeout: float | None = typer.Option(None, help="Optuna timeout in seconds."),
    promote: bool = typer.Option(
        False, "--promote/--no-promote", help="Make it champion when the release gates pass."
    ),
) -> None:
    """Train, evaluate, gate and register a model; resumes where an earlier run stopped."""
    with exit_on_error():
        settings = load_settings(environ=os.environ)
        started = datetime.now()
        described, store, options = training_features(settings, data, features_mode, feature)
        console.print(f"Training set: {described}.")
        try:
            result, promoted = run_training(
                settings,
                data,
                name=pipeline,
                promote=promote,
                start=_time(start),
                end=_time(end),
                search_trials=search_trials,
                search_timeout_s=search_timeout,
                **options,
            )
        finally:
            if store is not None:
                store.close()
    print_training(result, promoted)
    console.print(f"[dim]{(datetime.now() - started).total_seconds():.1f} s[/]")
