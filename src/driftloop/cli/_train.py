"""``driftloop train``: run a model's training pipeline with progress per step."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, err_console, exit_on_error, time_option
from driftloop.core.config import ModelConfig, Settings, load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.features import FeatureStore, load_definitions
from driftloop.training import PipelineResult, train_and_promote

__all__ = ["model_store", "print_training", "resolve_model", "run_training"]

GATES_FAILED_EXIT = 1


def run_training(
    settings: Settings, name: str, *, promote: bool = True, **options: Any
) -> tuple[PipelineResult, bool]:
    """Train with a progress bar over the steps; promote to champion when gates pass."""
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
            name,
            alias="champion" if promote else None,
            who=os.environ.get("USER", "driftloop"),
            on_step=on_step,
            **options,
        )


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1_000 or float(value).is_integer() else f"{value:.4f}"


def print_training(result: PipelineResult, promoted: bool) -> None:
    """Notes, steps (ran or cached, seconds), held-out metrics beside the trivial
    baseline's, gate checks and the outcome."""
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}")
    steps = Table(title="Pipeline steps")
    for column in ("step", "status", "seconds"):
        steps.add_column(column)
    for step in result.steps:
        steps.add_row(step.name, step.status, f"{step.seconds:.2f}")
    console.print(steps)
    metrics = Table(title="Held-out test window")
    for column, justify in (("metric", "left"), ("model", "right"), ("baseline", "right")):
        metrics.add_column(column, justify=justify)  # type: ignore[arg-type]
    base = result.baseline_metrics
    for key, value in result.metrics.items():
        if isinstance(value, int | float) and not key.endswith("_se"):
            other = base.get(key)
            shown = _number(other) if isinstance(other, int | float) else ""
            metrics.add_row(key, _number(value), shown)
    console.print(metrics)
    gates = Table(title="Release gates")
    for column in ("check", "result", "value", "threshold", "detail"):
        gates.add_column(column, overflow="fold")
    for check in result.gate_report.get("checks", []):
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        gates.add_row(
            check["name"],
            mark,
            str(check["value"]),
            str(check["threshold"]),
            "" if check["passed"] else str(check.get("detail", "")),
        )
    console.print(gates)
    if result.version is None:
        return
    ref = result.version.ref
    if promoted:
        console.print(f"Registered [bold]{ref}[/] and promoted it to [bold]champion[/].")
    elif result.gate_report.get("passed"):
        console.print(f"Registered [bold]{ref}[/] (alias challenger).")
    else:
        console.print(
            f"Registered [bold]{ref}[/]; release gates [red]failed[/], not promoted "
            f"(promoting it needs: driftloop models promote {ref} --force --reason ...)."
        )


def resolve_model(settings: Settings, model: str | None, data: str | None) -> str:
    """The model to train: named, the project's only one, or one named after ``data``."""
    if model:
        return model
    if len(settings.models) == 1:
        return next(iter(settings.models))
    if settings.models:
        raise InvalidParameterError(
            f"The project has several models ({', '.join(sorted(settings.models))}); "
            "name the one to train: driftloop train NAME."
        )
    if data:
        stem = Path(data.split("*")[0].rstrip("/")).stem or "model"
        return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    raise InvalidParameterError(
        "No model to train: add a [models.NAME] section to driftloop.toml (see "
        "docs/your-data.md) or give the data and label: driftloop train --data FILE "
        "--label COLUMN."
    )


def _with_overrides(config: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """The model's section with the command line's options on top.

    ``--include`` replaces the section's ``exclude`` and ``--exclude`` its ``include``:
    the command line chooses the columns, and the two cannot be combined."""
    given = {k: v for k, v in overrides.items() if v is not None}
    section = config.model_dump()
    for option, other in (("include", "exclude"), ("exclude", "include")):
        if given.get(option) and other not in given:
            section[other] = ()
    try:
        return ModelConfig.model_validate({**section, **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not where:
            raise InvalidParameterError(f"Model options: {message}.") from None
        raise InvalidParameterError(f"--{where}: {message}.") from None


def model_store(settings: Settings, config: ModelConfig) -> FeatureStore | None:
    """The project's feature store when the model reads store features."""
    if not config.store_features:
        return None
    definitions = settings.root / "features.py"
    if not definitions.is_file():
        raise InvalidParameterError(
            f"The model reads store_features but {definitions} does not exist; define the "
            "features there (driftloop init --example fraud writes one) or drop store_features."
        )
    return FeatureStore(settings, definitions=load_definitions(definitions))


@app.command()
def train(
    model: str | None = typer.Argument(None, help="Model name (its [models.NAME] section)."),
    data: str | None = typer.Option(
        None, "--data", help="Training data: a Parquet/CSV file, folder or glob, or duckdb:SQL."
    ),
    label: str | None = typer.Option(None, "--label", help="Label column."),
    timestamp: str | None = typer.Option(None, "--timestamp", help="Event-time column."),
    id_column: str | None = typer.Option(None, "--id", help="Id column (echoed, audited)."),
    task: str | None = typer.Option(None, help="binary, multiclass, regression or auto."),
    metric: str | None = typer.Option(None, help="Metric the gates judge on."),
    include: list[str] = typer.Option([], "--include", help="Only these feature columns."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave these columns out."),
    categorical: list[str] = typer.Option([], help="Treat these columns as categories."),
    entity_key: list[str] = typer.Option([], "--entity-key", help="Request key for enrichment."),
    start: str | None = typer.Option(None, help="Training window start (ISO date/time)."),
    end: str | None = typer.Option(None, help="Training window end, exclusive."),
    search_trials: int = typer.Option(0, help="Optuna trials (0: no search)."),
    search_timeout: float | None = typer.Option(None, help="Optuna timeout in seconds."),
    rerun: list[str] = typer.Option(
        [], "--rerun", help="Run this step again even if finished (e.g. gates)."
    ),
    promote: bool = typer.Option(
        False,
        "--promote/--no-promote",
        help="Make it champion when the release gates pass.",
        metavar="",
    ),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Train, evaluate, gate and register a model; resumes where an earlier run stopped.

    Exits 1 when the release gates fail (the version is registered, not promoted).
    """
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        name = resolve_model(settings, model, data)
        overrides: dict[str, Any] = {
            "data": data,
            "label": label,
            "timestamp": timestamp,
            "id": id_column,
            "task": task,
            "metric": metric,
            "include": tuple(include) or None,
            "exclude": tuple(exclude) or None,
            "categorical": tuple(categorical) or None,
            "entity_keys": tuple(entity_key) or None,
        }
        config = _with_overrides(settings.model(name), overrides)
        store = model_store(settings, config)
        started = datetime.now()
        console.print(f"Training model [bold]{name}[/] on {config.data or '(no data given)'}.")
        try:
            result, promoted = run_training(
                settings,
                name,
                promote=promote,
                config=config,
                store=store,
                start=time_option(start, "--start"),
                end=time_option(end, "--end"),
                search_trials=search_trials,
                search_timeout_s=search_timeout,
                rerun=tuple(rerun),
            )
        finally:
            if store is not None:
                store.close()
    print_training(result, promoted)
    console.print(f"[dim]{(datetime.now() - started).total_seconds():.1f} s[/]")
    if not result.gate_report.get("passed"):
        raise typer.Exit(code=GATES_FAILED_EXIT)
