"""Sliding-window aggregations per entity: the definition and the online evaluation.

A window aggregate as of time ``t`` covers the entity's events stamped in
``[t - window, t)`` and, for a view with a ``created_timestamp_field``, created before
``t``: strictly before ``t``, so the event being scored (stamped ``t``) and any other
event at that same instant are never counted, in training as in serving. Offline the
rule runs inside DuckDB (see ``_offline``); online it runs over the events kept per
entity (see :func:`evaluate_windows`), which are the events pushed or materialized
before ``t``.

>>> Aggregation("amount", "mean", "7d").name
'amount_mean_7d'
>>> Aggregation(None, "count", "1h").name
'count_1h'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from driftloop.core.errors import InvalidParameterError
from driftloop.features._definitions import (
    Entity,
    Field,
    ViewCommon,
    check_name,
    key_and_time_columns,
    parse_duration,
)
from driftloop.features._sources import as_source

__all__ = [
    "AGGREGATIONS",
    "CREATED_KEY",
    "Aggregation",
    "StreamFeatureView",
    "evaluate_windows",
    "window_events_after_us",
]

AGGREGATIONS = ("count", "sum", "mean", "min", "max", "count_distinct")
CREATED_KEY = "__created_us"
"""Where an online event of a view with a ``created_timestamp_field`` keeps its created
time (microseconds), beside its values: a window as of ``t`` skips events created at or
after ``t``, however early they were pushed."""


def _window_label(window: timedelta) -> str:
    seconds = window.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


@dataclass(frozen=True)
class Aggregation:
    """``function`` of ``column`` over the last ``window`` of each entity's events."""

    column: str | None
    function: str
    window: str | timedelta
    name: str = ""

    def __post_init__(self) -> None:
        if self.function not in AGGREGATIONS:
            raise InvalidParameterError(
                f"Aggregation function {self.function!r} is unknown. Known: "
                f"{', '.join(AGGREGATIONS)}."
            )
        if self.column is None and self.function != "count":
            raise InvalidParameterError(f"Aggregation '{self.function}' needs a column.")
        window = parse_duration(self.window, "window")
        assert window is not None
        object.__setattr__(self, "window", window)
        if not self.name:
            parts = [self.column, self.function] if self.column else [self.function]
            object.__setattr__(self, "name", "_".join([*parts, _window_label(window)]))
        check_name("Aggregation", self.name)

    @property
    def window_us(self) -> int:
        window = self.window
        assert isinstance(window, timedelta)
        return window // timedelta(microseconds=1)

    @property
    def dtype(self) -> str:
        return "int64" if self.function in ("count", "count_distinct") else "float64"

    def spec(self) -> dict[str, Any]:
        return {"column": self.column, "function": self.function, "window_us": self.window_us}


@dataclass(frozen=True, eq=False)
class StreamFeatureView(ViewCommon):
    """Window aggregates over an event source (and events pushed online).

    ``source`` holds the history of events (for training frames and backfill);
    :meth:`FeatureStore.push` adds new events online.
    """

    name: str
    entities: Sequence[Entity]
    source: Any
    timestamp_field: str
    aggregations: Sequence[Aggregation]
    created_timestamp_field: str | None = None
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("Stream feature view", self.name)
        entities = tuple(self.entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise InvalidParameterError(
                f"Stream feature view '{self.name}' needs at least one Entity in `entities`."
            )
        aggs = tuple(self.aggregations)
        if not aggs:
            raise InvalidParameterError(f"Stream feature view '{self.name}' has no aggregations.")
        names = [a.name for a in aggs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidParameterError(
                f"Stream feature view '{self.name}' has duplicate aggregations: {', '.join(dupes)}."
            )
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "aggregations", aggs)
        object.__setattr__(self, "source", as_source(self.source))
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def ttl(self) -> None:
        return None

    @property
    def ttl_us(self) -> None:
        return None

    @property
    def features(self) -> tuple[Field, ...]:
        return tuple(Field(a.name, a.dtype) for a in self.aggregations)

    @property
    def feature_names(self) -> list[str]:
        return [a.name for a in self.aggregations]

    @property
    def value_columns(self) -> list[str]:
        cols = {a.column for a in self.aggregations if a.column is not None}
        return sorted(cols)

    @property
    def max_window_us(self) -> int:
        return max(a.window_us for a in self.aggregations)

    @property
    def retention_us(self) -> int:
        """How long the online store keeps an event after the newest one of its key: the
        longest window, plus the microsecond its closed lower bound includes (stores drop
        events at or before ``newest - retention``)."""
        return self.max_window_us + 1

    def source_columns(self) -> dict[str, str]:
        cols = key_and_time_columns(
            self.join_keys, self.timestamp_field, self.created_timestamp_field
        )
        cols.update(dict.fromkeys(self.value_columns, "any"))
        return cols

    def spec(self) -> dict[str, Any]:
        return {
            **self.common_spec("stream_feature_view"),
            "schema": {a.name: a.dtype for a in self.aggregations},
            "aggregations": {a.name: a.spec() for a in self.aggregations},
        }

    def __repr__(self) -> str:
        return f"StreamFeatureView({self.name!r}, features={self.feature_names})"


def window_events_after_us(view: StreamFeatureView, as_of_us: int) -> int:
    """The exclusive lower bound of the event times that any window of ``view`` as of
    ``as_of_us`` can cover (what an online read asks for: events newer than it)."""
    return as_of_us - view.max_window_us - 1


def evaluate_windows(
    view: StreamFeatureView, events: Sequence[tuple[int, Mapping[str, Any]]], as_of_us: int
) -> dict[str, Any]:
    """The view's aggregates as of ``as_of_us`` over ``events`` (``(ts_us, values)``).

    Same rules as the offline SQL: events stamped in ``[as_of - window, as_of)`` and
    created before ``as_of`` (:data:`CREATED_KEY`; without it, the event time); nulls
    are skipped by sum/mean/min/max/count_distinct; an empty window gives count 0, sum
    0, distinct 0 and null mean/min/max.

    >>> view = StreamFeatureView("tx", [Entity("card", ["card_id"])], "tx.parquet", "ts",
    ...                          [Aggregation(None, "count", "1h")])
    >>> hour = 3_600_000_000
    >>> evaluate_windows(view, [(0, {}), (hour, {}), (2 * hour, {})], 2 * hour)
    {'count_1h': 1}
    """
    if view.created_timestamp_field:
        events = [(ts, v) for ts, v in events if v.get(CREATED_KEY, ts) < as_of_us]
    out: dict[str, Any] = {}
    for agg in view.aggregations:
        lo = as_of_us - agg.window_us
        inside = [values for ts, values in events if lo <= ts < as_of_us]
        if agg.function == "count":
            out[agg.name] = len(inside)
            continue
        col = agg.column
        assert col is not None
        vals = [v[col] for v in inside if v.get(col) is not None]
        if agg.function == "count_distinct":
            out[agg.name] = len(set(vals))
        elif agg.function == "sum":
            out[agg.name] = math.fsum(float(v) for v in vals)
        elif not vals:
            out[agg.name] = None
        elif agg.function == "mean":
            out[agg.name] = math.fsum(float(v) for v in vals) / len(vals)
        elif agg.function == "min":
            out[agg.name] = float(min(vals))
        else:
            out[agg.name] = float(max(vals))
    return out
