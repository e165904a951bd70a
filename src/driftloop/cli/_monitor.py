"""``driftloop monitor``: assess windows of predictions, write drift reports."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import typer

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error, progress_bar
from driftloop.core.config import load_settings
from driftloop.core.errors import DataValidationError, InvalidParameterError, NotFoundError
from driftloop.monitoring import (
    Bands,
    DriftReport,
    FrameRecordSource,
    Monitor,
    MonitoringStore,
    Reference,
    Skipped,
    StaticReferences,
    drift_report,
    learn_reference,
    print_report,
    project_monitor,
    write_html_report,
)

__all__ = ["monitor"]

monitor = typer.Typer(help="Drift, delayed-label performance and alerts.", no_args_is_help=True)
app.add_typer(monitor, name="monitor")


def _references(paths: list[Path]) -> StaticReferences:
    found: dict[tuple[str, int], Reference] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found[(str(data["model"]), int(data["version"]))] = Reference.from_dict(data)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidParameterError(
                f"--reference {path} is not a reference file (JSON with model, version, "
                f"profile, baseline): {exc}."
            ) from None
    return StaticReferences(found)


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    """A Parquet file or folder, or an error naming ``path`` (no traceback)."""
    if not path.exists():
        raise NotFoundError(f"{what} {path} does not exist.")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataValidationError(
            f"{what} {path} is not a readable Parquet file or folder: {exc}"
        ) from None


@monitor.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="One pass, then exit.", metavar=""),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Model to monitor (repeatable; default: the registry's)."
    ),
    records: Path | None = typer.Option(
        None,
        "--records",
        help="Offline: a Parquet file or folder of prediction records instead of the audit log.",
    ),
    reference: list[Path] = typer.Option(
        [],
        "--reference",
        help="Offline: a reference JSON of a model version instead of the registry (repeatable).",
    ),
    every: float = typer.Option(300.0, help="Seconds between passes when not --once."),
    now: datetime | None = typer.Option(None, help="Assess as of this UTC time (default: now)."),
    partial: bool = typer.Option(
        False,
        "--partial",
        help="Also assess the window still filling (today's, by default) on its records so far.",
        metavar="",
    ),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Assess every complete window, store the results, alert on new incidents.

    Records come from the project's audit log and references from its registry (each
    version's stored profile and held-out metrics), unless --records / --reference name
    offline files. When nothing is assessed, the output says why and what to do.
    """
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        with project_monitor(
            settings,
            models=model,
            source=FrameRecordSource(_read_parquet(records, "--records")) if records else None,
            references=_references(reference) if reference else None,
        ) as mon:
            at = now.replace(tzinfo=UTC) if now is not None and now.tzinfo is None else now
            while True:
                _one_pass(mon, at, list(model) or None, partial=partial)
                if once:
                    break
                time.sleep(every)


def _one_pass(
    mon: Monitor, at: datetime | None, models: list[str] | None, *, partial: bool
) -> None:
    with progress_bar() as bar:
        task = bar.add_task("assessing models", total=None)
        reports = mon.run_once(
            at, models=models, progress=lambda m: bar.update(task, description=m), partial=partial
        )
    for report in reports:
        print_report(report, console, top=5)
    console.print(f"{len(reports)} window(s) assessed at {datetime.now(UTC):%H:%M:%S}.")
    _explain(mon, reports)


def _explain(mon: Monitor, reports: list[DriftReport]) -> None:
    """Why records gave no (judged) assessment, and what to do about it."""
    for skipped in mon.skipped:
        console.print(f"  - {skipped.message}.", markup=False, highlight=False)
    hints = [_hint(mon, s) for s in mon.skipped if s.reason != "unchanged" or not reports]
    if any(r.verdict == "insufficient-data" for r in reports):
        hints.append(
            f"windows with fewer than monitoring.min_rows ({mon.config.min_rows}) records are "
            "not judged: wait for more traffic, use longer windows (monitoring.window_size), "
            "or lower min_rows ([monitoring] in driftloop.toml, or DRIFTLOOP_MONITORING__MIN_ROWS)"
        )
    for hint in dict.fromkeys(hints):
        console.print(f"  To do: {hint}.", markup=False, highlight=False)


def _hint(mon: Monitor, skipped: Skipped) -> str:
    if skipped.reason == "no-records":
        return (
            "records are read from --now minus monitoring.lookback up to --now; for records "
            "at other times pass --now (for example just after the newest record)"
        )
    if skipped.reason == "no-reference":
        return "register the version through `driftloop train`, or pass --reference FILE"
    if skipped.reason == "filling" and mon.spec.by == "count":
        return "wait for more records, or lower monitoring.window_size"
    if skipped.reason == "filling":
        return (
            "wait for the window to end, pass --partial to assess its records so far, "
            "or --now after its end"
        )
    return f"the results so far: `driftloop monitor report --model {skipped.model}`"


@monitor.command("learn")
def learn(
    model: str = typer.Option(..., "--model", "-m", help="Model name."),
    version: int = typer.Option(..., "--version", help="Model version."),
    start: datetime = typer.Option(..., "--from", help="Start of the reference period (UTC)."),
    end: datetime = typer.Option(..., "--to", help="End of the reference period (UTC)."),
    route: str = typer.Option("champion", "--route", help="Traffic arm whose records to use."),
    records: Path | None = typer.Option(
        None, "--records", help="Offline: a Parquet file or folder of prediction records."
    ),
    reference: list[Path] = typer.Option(
        [], "--reference", help="Offline: a reference JSON of the version (repeatable)."
    ),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Learn a version's reference (profile, alert bands, score calibration) from its
    records of a reference period, and keep it for `monitor run` with
    [monitoring] thresholds = "learned" (it replaces one learned before)."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        with project_monitor(
            settings,
            models=[model],
            source=FrameRecordSource(_read_parquet(records, "--records")) if records else None,
            references=_references(reference) if reference else None,
        ) as mon:
            base = mon.references.reference(model, version)
            if base is None:
                raise NotFoundError(f"Model '{model}' version {version} has no reference profile.")
            period = (_utc(start), _utc(end))
            found = mon.source.read(model, *period)
            mine = found[(found["version"].astype(str) == str(version)) & (found["route"] == route)]
            learned = learn_reference(mine, base, mon.config, spec=mon.spec)
            mon.store.save_reference(model, version, route, learned, period)
    bands = learned.bands or Bands(0, 0)  # learn_reference always learns them
    console.print(
        f"Learned the reference of {model} v{version} ({route}) {bands.describe()}: "
        f"{len(bands.drift)} drift, {len(bands.performance)} realized and "
        f"{len(bands.estimated)} estimated metric band(s)"
        + (", scores calibrated" if bands.calibration is not None else "")
        + "."
    )
    if mon.config.thresholds != "learned":
        console.print(
            'Used by `monitor run` with [monitoring] thresholds = "learned" (now: fixed).',
            markup=False,
        )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@monitor.command("report")
def report(
    model: str = typer.Option(..., "--model", help="Model name."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Write a self-contained HTML drift report of a model from the monitoring tables."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        store = MonitoringStore(settings.audit.url, root=settings.root)
        path = write_html_report(out, store=store, model=model)
    console.print(f"Wrote {path} ({path.stat().st_size / 1024:,.0f} KiB).")


@monitor.command("compare")
def compare(
    reference: Path = typer.Argument(..., help="Reference Parquet file (e.g. training data)."),
    current: Path = typer.Argument(..., help="Current Parquet file."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write an HTML report."),
    config_file: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Drift of one frame against another (sample against sample), printed as a table."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        result = drift_report(
            _read_parquet(reference, "Reference file"),
            _read_parquet(current, "Current file"),
            config=settings.monitoring,
        )
        print_report(result, console)
        if out is not None:
            write_html_report(out, reports=[result])
            console.print(f"Wrote {out}.")
