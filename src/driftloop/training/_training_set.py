"""From the rows of a training window to a training set: features, encoded label, notes.

What is a feature, by the model's ``[models.<name>]`` section
(:class:`~driftloop.core.config.ModelConfig`):

* every column of the table but the label, timestamp, id, entity keys and context
  columns (``include`` names exactly which, ``exclude`` leaves some out); numbers,
  booleans and text (categories) as they are; timestamps only through declared parts
  (``timestamps = {signup = ["hour"]}`` makes ``signup_hour``); text with more than
  :data:`MAX_CATEGORIES` values, or a distinct value per row, is left out as an
  identifier unless included by name;
* ``store_features``: features of the feature store as of each row's timestamp, read by
  the rows' entity keys (point in time, as :meth:`FeatureStore.training_frame` joins);
* every column left out is named in the notes with the reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from driftloop.core.config import ModelConfig
from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.features import FeatureStore
from driftloop.registry import Signature, column_kind, encode_frame, time_parts
from driftloop.stats import METRICS, TASKS, encode_labels, infer_task

__all__ = ["MAX_CATEGORIES", "TrainingSet", "build_training_set", "parse_timestamps"]

MAX_CATEGORIES = 1_000


@dataclass(frozen=True)
class TrainingSet:
    """The frame (features, encoded label, timestamp, id, context), its signature, the
    entity keys serving enriches by, and notes on what was inferred or left out."""

    frame: pd.DataFrame
    signature: Signature
    entity_keys: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    context: tuple[str, ...] = field(default_factory=tuple)

    @property
    def features(self) -> list[str]:
        return self.signature.names


def parse_timestamps(frame: pd.DataFrame, column: str) -> pd.Series:
    """The event-time column as datetimes (ISO 8601 text is parsed), or a clear error."""
    if column not in frame.columns:
        raise SchemaMismatchError(
            f"The training data has no timestamp column '{column}'. "
            f"Columns: {', '.join(map(str, frame.columns))}."
        )
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    example = next((v for v in values.dropna().head(1)), None)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        try:
            return pd.to_datetime(values, format="ISO8601")
        except (TypeError, ValueError):
            pass
    raise SchemaMismatchError(
        f"Timestamp column '{column}' holds {values.dtype} values such as {example!r}, not "
        "times. Give ISO 8601 times (2026-01-31T12:00:00Z), or convert it in a duckdb: query "
        f'(e.g. to_timestamp("{column}") for epoch seconds).'
    )


def build_training_set(
    rows: pd.DataFrame,
    config: ModelConfig,
    *,
    store: FeatureStore | None = None,
    sensitive: Sequence[str] = (),
) -> TrainingSet:
    """The training set of ``rows`` (see the module docs); ``sensitive`` columns (the
    fairness gate's attribute) are kept as context, not features."""
    label = _required(config.label, "label")
    if label not in rows.columns:
        raise SchemaMismatchError(
            f"The training data has no label column '{label}'. "
            f"Columns: {', '.join(map(str, rows.columns))}."
        )
    notes: list[str] = []
    rows = _drop_unlabelled(rows, label, notes).copy(deep=False)  # columns replaced, not edited
    if config.timestamp is not None:
        rows = rows.assign(**{config.timestamp: parse_timestamps(rows, config.timestamp)})
    task, classes, y = _label(rows[label], config, notes)
    reserved = {label, config.timestamp, config.id, *config.entity_keys, *config.context}
    reserved |= {config.segment, *sensitive} - {None}
    features, derived = _table_features(rows, config, reserved, notes)
    frame = rows[features].copy()
    for name, (column, part) in derived.items():
        frame[name] = time_parts(rows[column], part)
    sources: dict[str, tuple[str, str | int | None]] = {}
    entity_keys = tuple(config.entity_keys)
    if config.store_features:
        if store is None:
            raise InvalidParameterError(
                "store_features are set but the project has no feature store definitions "
                "(features.py)."
            )
        stored, sources, keys, request = _store_features(rows, config, store, [*frame.columns])
        for column in request:
            if column not in frame.columns:
                notes.append(f"kept '{column}' as a feature: an on-demand feature reads it")
                frame.insert(len(frame.columns) - len(derived), column, rows[column].to_numpy())
        frame = pd.concat([frame, stored], axis=1)
        entity_keys = tuple(dict.fromkeys([*entity_keys, *keys]))
    if frame.shape[1] == 0:
        raise SchemaMismatchError(
            f"No feature is left to train on: the columns are {', '.join(map(str, rows.columns))} "
            "and all are the label, timestamp, id, keys, context or excluded."
        )
    metric = config.metric or TASKS[task].default_metric
    if metric not in METRICS or metric not in TASKS[task].metrics:
        raise InvalidParameterError(
            f"metric {metric!r} does not judge a {task} model; use one of "
            f"{', '.join(TASKS[task].metrics)}."
        )
    signature = Signature.infer(
        frame,
        task=task,
        classes=classes,
        sources=sources,
        categorical=[c for c in config.categorical if c in frame.columns],
        derived=derived,
        label=label,
        timestamp=config.timestamp,
        id=config.id,
        metric=metric,
    )
    context = [c for c in (config.timestamp, config.id, *config.timestamps, *config.context) if c]
    context += [c for c in (config.segment, *sensitive) if c and c in rows.columns]
    out = frame.copy()
    for column in dict.fromkeys(context):
        if column not in out.columns:
            out[column] = rows[column].to_numpy()
    out[label] = y
    encode_frame(signature, out)  # the frame's values encode: refused now, not at fit
    return TrainingSet(out, signature, entity_keys, tuple(notes), tuple(dict.fromkeys(context)))


def _required(value: str | None, key: str) -> str:
    if not value:
        raise InvalidParameterError(
            f"The model has no {key}: set it in [models.<name>] of driftloop.toml or pass "
            f"--{key} on the command line."
        )
    return value


def _drop_unlabelled(rows: pd.DataFrame, label: str, notes: list[str]) -> pd.DataFrame:
    unlabelled = int(rows[label].isna().sum())
    if unlabelled:
        notes.append(f"left out {unlabelled:,} row(s) whose label '{label}' is null")
        rows = rows[rows[label].notna()].reset_index(drop=True)
    return rows


def _label(
    values: pd.Series, config: ModelConfig, notes: list[str]
) -> tuple[str, tuple[str, ...], Any]:
    name = config.label or "label"
    if config.task == "auto":
        task, reason = infer_task(values, name=name)
        notes.append(f"task {task}: {reason} (set task = ... to choose)")
    else:
        task = config.task
    y, classes = encode_labels(values, task, name=name)
    if task == "binary" and config.positive_class is not None:
        if config.positive_class not in classes:
            raise SchemaMismatchError(
                f"positive_class {config.positive_class!r} is not a value of '{name}' "
                f"({', '.join(classes)})."
            )
        if classes[1] != config.positive_class:
            classes, y = (classes[1], classes[0]), 1 - y
    if task == "binary":
        notes.append(f"positive class: {classes[1]!r} (scores are its probability)")
    return task, classes, y


def _table_features(
    rows: pd.DataFrame, config: ModelConfig, reserved: set[str | None], notes: list[str]
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    columns = [str(c) for c in rows.columns]
    if config.include:
        missing = [c for c in config.include if c not in columns]
        if missing:
            raise SchemaMismatchError(
                f"include names column(s) {', '.join(missing)} that the training data lacks. "
                f"Columns: {', '.join(columns)}."
            )
        candidates = list(config.include)
    else:
        unknown = [c for c in config.exclude if c not in columns]
        if unknown:
            raise SchemaMismatchError(
                f"exclude names column(s) {', '.join(unknown)} that the training data lacks."
            )
        candidates = [c for c in columns if c not in reserved and c not in config.exclude]
    features: list[str] = []
    derived: dict[str, tuple[str, str]] = {}
    for column, parts in config.timestamps.items():
        if column not in columns:
            raise SchemaMismatchError(
                f"timestamps names column '{column}' that the training data lacks."
            )
        times = parse_timestamps(rows, column)
        rows[column] = times
        derived.update({f"{column}_{part}": (column, part) for part in parts})
    for column in candidates:
        if column in config.timestamps:
            continue
        values = rows[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            notes.append(
                f"left out '{column}': a timestamp (declare parts of it: timestamps = "
                f'{{{column} = ["hour", "day_of_week"]}})'
            )
            continue
        kind = "category" if column in config.categorical else column_kind(values, column)
        if kind == "category" and column not in config.include:
            distinct = values.nunique(dropna=True)
            if distinct > MAX_CATEGORIES or (distinct == len(values) and len(values) > 50):
                notes.append(
                    f"left out '{column}': text with {distinct:,} distinct values looks like an "
                    "identifier (include it by name to use it)"
                )
                continue
        features.append(column)
    return features, derived


def _store_features(
    rows: pd.DataFrame, config: ModelConfig, store: FeatureStore, taken: list[str]
) -> tuple[pd.DataFrame, dict[str, tuple[str, str | int | None]], list[str], list[str]]:
    """Store features as of each row's timestamp, by the views' join keys; also the join
    keys and the request fields on-demand features read."""
    timestamp = _required(config.timestamp, "timestamp")
    catalog = store.catalog
    references = list(config.store_features)
    if references == ["*"]:
        references = [
            f"{v.name}:{f}" for v in catalog.views.values() for f in v.feature_names
        ] + list(catalog.on_demand)
    resolved = catalog.resolve(references)
    keys = list(dict.fromkeys(k for v in resolved.views for k in catalog.view(v).join_keys))
    view_features = {f for v in catalog.views.values() for f in v.feature_names}
    request = [
        i
        for od in resolved.on_demand
        for i in od.inputs
        if i not in view_features and i not in catalog.on_demand
    ]
    wanted = list(dict.fromkeys([*keys, timestamp, *request]))
    missing = [c for c in wanted if c not in rows.columns]
    if missing:
        raise SchemaMismatchError(
            f"The training data lacks column(s) {', '.join(missing)} that the feature store "
            f"needs (join keys, event time or request fields of on-demand features). "
            f"Columns: {', '.join(map(str, rows.columns))}."
        )
    clash = [f for f in resolved.outputs if f in taken]
    if clash:
        raise SchemaMismatchError(
            f"Store feature(s) {', '.join(clash)} have the names of table columns already "
            "used as features; exclude the table columns or rename the features."
        )
    entity_df = rows[wanted].reset_index(drop=True)
    built = store.training_frame(entity_df, references, timestamp_field=timestamp)
    outputs = [f for f in resolved.outputs if f not in request]
    stored = pd.DataFrame({f: built[f].to_numpy() for f in outputs})
    sources: dict[str, tuple[str, str | int | None]] = {}
    for view_name, names in resolved.views.items():
        version = catalog.view(view_name).version
        sources.update({f: (view_name, version) for f in names if f in outputs})
    sources.update({od.name: (od.name, od.version) for od in resolved.on_demand})
    return stored.set_index(rows.index), sources, keys, list(dict.fromkeys(request))
