"""``driftloop predictions ...``: served (and ``score --audit``) predictions, read back from
the audit log without Python: one by id, or a model's over a time range or for an entity.

Tables are for people; ``--json`` prints the same records for scripts (times in ISO 8601,
UTC; missing values as null).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from driftloop.audit import (
    FRAME_COLUMNS,
    AuditLog,
    AuditRecord,
    Relabel,
    enforce_retention,
    label_store,
    open_audit_log,
    open_retained,
)
from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error, time_option
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.core.urls import local_path, scheme_of

__all__ = ["predictions_app"]

predictions_app = typer.Typer(
    help="Served predictions, read from the audit log.", no_args_is_help=True
)
app.add_typer(predictions_app, name="predictions")

_CONFIG = typer.Option(None, "--config", help="Settings file.")
_JSON = typer.Option(False, "--json", help="Print JSON (for scripts).", metavar="")
# The audit log's fixed frame columns; any other column of a frame is a feature.
_FIXED = FRAME_COLUMNS
# The widest range a list reads when --since / --until are not given.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


@contextmanager
def _audit_log(config_file: Path | None) -> Iterator[AuditLog]:
    """The project's audit log, opened for reading; an embedded one must already exist
    (opening would create an empty file and answer every question with nothing)."""
    settings = load_settings(config_file, environ=os.environ)
    url = settings.audit.url
    if scheme_of(url) == "sqlite":
        path = local_path(url.partition("?")[0], settings.root)
        if not path.is_file():
            raise NotFoundError(
                f"There is no audit log at {path} (audit.url = {url!r}): nothing has been "
                "served (driftloop serve) or scored with driftloop score --audit here yet."
            )
    log = open_audit_log(url, root=settings.root)
    try:
        yield log
    finally:
        log.close()


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return pd.Timestamp(value).isoformat()


def _plain(value: Any) -> Any:
    """A JSON value: NaN and NaT as null, numpy scalars as Python's."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return _iso(value)
    return value.item() if hasattr(value, "item") else value


def _output(score: float, outputs: Mapping[str, Any] | None) -> str:
    """What the model answered, as a person reads it: the class, the value or the score."""
    if outputs and "class" in outputs:
        return f"{outputs['class']} ({score:.4f})"
    if outputs and "value" in outputs:
        return f"{float(outputs['value']):.6g}"
    return f"{score:.4f}"


def _time(value: Any) -> str:
    return "-" if _iso(value) is None else f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"


def _label(value: Any) -> str:
    return "-" if _plain(value) is None else f"{float(value):g}"


def record_json(record: AuditRecord) -> dict[str, Any]:
    """One audit record as plain JSON values."""
    return {
        "prediction_id": record.prediction_id,
        "ts": _iso(record.ts),
        "served_at": _iso(record.served_at),
        "model": record.model,
        "version": record.version,
        "route": record.route,
        "score": record.score,
        "outputs": record.outputs,
        "decision": record.decision,
        "label": record.label,
        "label_ts": _iso(record.label_ts),
        "latency_ms": record.latency_ms,
        "entity_keys": dict(record.entity_keys),
        "features": {k: _plain(v) for k, v in record.features.items()},
        "feature_ts": {k: _iso(v) for k, v in record.feature_ts.items()},
        "missing": list(record.missing),
        "explanation": None if record.explanation is None else dict(record.explanation),
    }


@predictions_app.command()
def show(
    prediction_id: str = typer.Argument(..., help="The prediction_id the server answered."),
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """One prediction with its features, label, explanation and relabels.

    When, which model and version, what it answered and decided, its label if known (and
    every earlier label it replaced: who, when), the features it saw (and which were
    missing) and its explanation.
    """
    with exit_on_error(), _audit_log(config_file) as log:
        record = log.get(prediction_id)
        labels = label_store(log)
        relabels = labels.relabels(prediction_id) if labels is not None else []
    if as_json:
        typer.echo(json.dumps({**record_json(record), "relabels": _relabels(relabels)}, indent=2))
        return
    about = Table(title=f"Prediction {escape(record.prediction_id)}", show_header=False)
    about.add_column("field", style="bold")
    about.add_column("value", overflow="fold")
    label = (
        f"{_label(record.label)} (at {_time(record.label_ts)} UTC)"
        if record.label is not None
        else "not known yet"
    )
    for field, text in (
        ("event time", f"{_time(record.ts)} UTC"),
        ("served at", f"{_time(record.served_at)} UTC" if record.served_at else "-"),
        ("model", f"{record.model}:{record.version}"),
        ("route", record.route),
        ("answer", _output(record.score, record.outputs)),
        ("decision", record.decision or "-"),
        ("label", label),
        ("entity keys", ", ".join(f"{k}={v}" for k, v in record.entity_keys.items()) or "-"),
        ("missing", ", ".join(record.missing) or "-"),
        ("latency", f"{record.latency_ms:.2f} ms"),
    ):
        about.add_row(field, escape(text))
    if record.outputs and "probabilities" in record.outputs:
        probabilities = record.outputs["probabilities"]
        shown = ", ".join(f"{k}: {float(v):.4f}" for k, v in probabilities.items())
        about.add_row("probabilities", escape(shown))
    console.print(about)
    features = Table("feature", "value", "as of", title="Features the model saw")
    for feature, value in record.features.items():
        plain = _plain(value)
        shown = "" if plain is None and feature in record.missing else escape(repr(plain))
        if feature in record.missing:  # a default filled in is still named missing
            shown = f"{shown} [yellow](missing, filled in)[/]" if shown else "[yellow]missing[/]"
        stamp = record.feature_ts.get(feature)
        features.add_row(escape(feature), shown, "request" if stamp is None else _time(stamp))
    console.print(features)
    if record.explanation:
        top = sorted(record.explanation.items(), key=lambda kv: -abs(kv[1]))
        explanation = Table("feature", "contribution", title="Explanation (TreeSHAP)")
        for name, contribution in top:
            explanation.add_row(escape(name), f"{contribution:+.4f}")
        console.print(explanation)
    if relabels:
        history = Table("when (UTC)", "old label", "new label", "by", title="Relabels")
        for change in relabels:
            history.add_row(
                _time(change.ts),
                _label(change.old_label),
                _label(change.new_label),
                escape(change.actor),
            )
        console.print(history)


def _relabels(relabels: list[Relabel]) -> list[dict[str, Any]]:
    """Each change of the prediction's label: old and new label, who and when."""
    return [
        {"ts": _iso(r.ts), "old_label": r.old_label, "new_label": r.new_label, "actor": r.actor}
        for r in relabels
    ]


def _utc(value: pd.Timestamp) -> datetime:
    """A time given on the command line as aware UTC (naive: taken to be UTC, as the
    audit log takes it), so a naive --since and an aware --until compare."""
    stamp = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    return stamp.to_pydatetime()


def _entities(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise InvalidParameterError(
                f"--entity {value!r} is not KEY=VALUE (e.g. --entity customer_id=42)."
            )
        pairs.append((key, wanted))
    return pairs


def _select(
    log: AuditLog,
    model: str | None,
    start: datetime,
    end: datetime,
    entities: list[tuple[str, str]],
) -> pd.DataFrame:
    """The predictions in ``[start, end)``, of ``model`` if given, made for every entity
    given, oldest first."""
    if not entities:
        return log.window(start, end, model=model)
    if end < start:
        raise InvalidParameterError(f"--until {end} is before --since {start}.")
    frame: pd.DataFrame | None = None
    for key, value in entities:
        part = log.by_entity(key, value, start=start, end=end)
        frame = part if frame is None else frame[frame["prediction_id"].isin(part["prediction_id"])]
    assert frame is not None
    if model is not None:
        frame = frame[frame["model"] == model]
    return frame.reset_index(drop=True)


def _rows_json(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = [c for c in frame.columns if c not in _FIXED]
    return [
        {
            **{c: _plain(row[c]) for c in _FIXED if c != "missing"},
            "missing": list(row["missing"]),
            "features": {f: _plain(row[f]) for f in features},
        }
        for row in frame.to_dict("records")
    ]


@predictions_app.command("list")
def list_predictions(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's."),
    since: str | None = typer.Option(None, help="From this event time (ISO; UTC if naive)."),
    until: str | None = typer.Option(None, help="Before this event time (ISO), exclusive."),
    entity: list[str] = typer.Option(
        [],
        "--entity",
        help="Only those made for KEY=VALUE (repeatable: all must hold).",
        metavar="KEY=VALUE",
    ),
    limit: int = typer.Option(20, "--limit", "-n", help="The latest N (0: all).", min=0),
    as_json: bool = _JSON,
    config_file: Path | None = _CONFIG,
) -> None:
    """Predictions by event time, the latest first.

    What each answered and decided, and its label once feedback arrived.
    """
    with exit_on_error():
        start = time_option(since, "--since")
        end = time_option(until, "--until")
        window = (
            _EARLIEST if start is None else _utc(start),
            _LATEST if end is None else _utc(end),
        )
        pairs = _entities(entity)
        with _audit_log(config_file) as log:
            frame = _select(log, model, *window, pairs)
    total = len(frame)
    shown = frame.iloc[::-1] if limit == 0 else frame.iloc[::-1].head(limit)
    if as_json:
        typer.echo(json.dumps(_rows_json(shown), indent=2))
        return
    if not total:
        which = f" of model '{model}'" if model else ""
        console.print(f"No predictions{escape(which)} in the audit log for this selection.")
        return
    title = f"Predictions of {model}" if model else "Predictions"
    rows = shown.to_dict("records")
    # Route and missing only when they say something: one route for all rows is noise.
    with_route = len({row["route"] for row in rows}) > 1
    with_missing = any(len(row["missing"]) for row in rows)
    table = Table(
        title=escape(f"{title}, latest first (times in UTC)"),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    # Times and ids never wrap: an id is what `predictions show` takes, copied whole.
    table.add_column("event time", no_wrap=True)
    table.add_column("prediction id", no_wrap=True)
    table.add_column("version" if model else "model", overflow="fold")
    if with_route:
        table.add_column("route", overflow="fold")
    for column in ("answer", "decision", "label"):
        table.add_column(column, overflow="fold")
    if with_missing:
        table.add_column("missing", overflow="fold")
    for row in rows:
        outputs = row["outputs"] if isinstance(row["outputs"], Mapping) else None
        cells = [
            _time(row["ts"]),
            escape(str(row["prediction_id"])),
            escape(str(row["version"]) if model else f"{row['model']}:{row['version']}"),
            *([escape(str(row["route"]))] if with_route else []),
            escape(_output(float(row["score"]), outputs)),
            escape(str(row["decision"] or "-")),
            _label(row["label"]),
            *([escape(", ".join(row["missing"]) or "-")] if with_missing else []),
        ]
        table.add_row(*cells)
    console.print(table)
    if len(shown) < total:
        console.print(f"[dim]The latest {len(shown)} of {total:,}; --limit N for more.[/]")


@predictions_app.command("compact")
def compact(
    config_file: Path | None = _CONFIG,
) -> None:
    """Apply [audit.retention] once: old predictions to Parquet, old archive days deleted.

    `driftloop serve` does the same every `every_s` seconds; this is for cron or a
    one-off. Windows and lookups still read compacted predictions.
    """
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        policy = settings.audit.retention
        if not policy.enabled:
            raise InvalidParameterError(
                "audit.retention sets no limit: set hot_days, hot_max_rows or archive_days "
                "under [audit.retention] in driftloop.toml."
            )
        with _audit_log(config_file):  # an embedded log must exist already
            pass
        audit = open_retained(settings.audit.url, settings.root)
        try:
            report = enforce_retention(audit, policy)
        finally:
            audit.close()
    console.print(
        f"{report.compacted:,} prediction(s) compacted to Parquet in {report.files} file(s); "
        f"{len(report.pruned)} archived day(s) deleted; {report.hot_rows:,} in the database."
    )
