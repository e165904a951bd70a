"""The offline store: every read of feature history runs inside DuckDB.

Point-in-time joins are DuckDB ``ASOF`` joins, and the ASOF row is re-checked: the few
entity rows whose latest row arrived after their event time ("late"), or shares its
key and event time with other rows ("tied": the ASOF join picks one arbitrarily), fall
back to a range join that picks the latest row known at that time, so a late-arriving
row is never used, a usable earlier row is never lost, and ties are broken by one
rule. Window aggregates are one range join per stream view, filtered per window, over
the events strictly before the entity row's time (``[t - window, t)``, created before
``t``: see ``_windows``). The SQL returns a row id instead of sorting on it; the result
is put back in entity order by a ``take``.

"Latest" is one total order, the same in every path (ASOF join, range join, late-row
fallback, materialization): the greatest event time, then the greatest created time (a
null created time counts as the event time), then, for rows still tied, the greatest
feature values compared in the view's schema order (nulls lowest).

Timestamps are compared as naive UTC: time-zone-aware columns and ISO strings with an
offset are converted to UTC, naive ones are taken as UTC (the session time zone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from driftloop.core.errors import DataValidationError, SchemaMismatchError
from driftloop.features._definitions import DTYPES, FeatureView
from driftloop.features._time import from_us, to_us
from driftloop.features._windows import StreamFeatureView

__all__ = ["OfflineStore", "quote"]

AnyView = FeatureView | StreamFeatureView
# A view at least this many times longer than the entity frame is range-joined (see
# OfflineStore._use_range_join); measured here: 40x -> range join 1.7x faster, 4x -> slower.
RANGE_JOIN_RATIO = 10
_ROW = "__row"
_T = "__t"


def quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def type_family(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "U")):
        return "integer"
    if t.startswith(("FLOAT", "DOUBLE", "DECIMAL", "REAL")):
        return "float"
    if t.startswith("VARCHAR"):
        return "string"
    if t.startswith("BOOLEAN"):
        return "bool"
    if t.startswith(("TIMESTAMP", "DATE")):
        return "timestamp"
    return t.lower()


@dataclass(frozen=True)
class ViewRequest:
    """Which features of one view a training frame asks for."""

    view: AnyView
    features: Sequence[str]


class OfflineStore:
    """Feature history in DuckDB: sources as relations, point-in-time reads as SQL."""

    # How plain views are joined: "auto" picks per view; "asof" / "range" force one
    # (the tests run both).
    join_strategy = "auto"

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        root: Path,
        *,
        key_slice: tuple[int, int] | None = None,
    ) -> None:
        self.connection = connection
        self.root = root
        # (part, parts): read only the source rows whose join-key hash falls in the part
        # (a partition of a distributed training frame, see _partitioned)
        self.key_slice = key_slice
        connection.execute("SET TimeZone = 'UTC'")
        self._checked: dict[str, dict[str, str]] = {}
        self._rows: dict[str, int] = {}

    def relation(self, view: AnyView) -> str:
        source = view.source_.relation_sql(self.root, self.connection.register)
        if self.key_slice is None:
            return source
        part, parts = self.key_slice
        where = f"{key_hash(view.join_keys, self.columns(view))} % {parts} = {part}"
        return f"(SELECT * FROM {source} WHERE {where})"

    def columns(self, view: AnyView) -> dict[str, str]:
        """The source's columns and DuckDB types (schema checked on first use)."""
        key = f"{view.name}@{view.version}"
        if key not in self._checked:
            rel = view.source_.relation_sql(self.root, self.connection.register)
            try:
                rows = self.connection.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
            except duckdb.Error as exc:
                raise DataValidationError(
                    f"Source of feature view '{view.name}' cannot be read: {exc}"
                ) from exc
            cols = {str(r[0]): str(r[1]) for r in rows}
            check_schema(view, cols)
            self._checked[key] = cols
        return self._checked[key]

    def _use_range_join(self, view: FeatureView, entity_rows: int) -> bool:
        """Whether a hash range join beats the ASOF join for this view.

        An ASOF join sorts the whole view; a range join (bounded by the TTL) only probes
        it, which wins when the entity frame is small next to the view's history.
        """
        if self.join_strategy != "auto":
            return self.join_strategy == "range"
        if view.ttl_us is None or view.source_.describe()["kind"] == "query":
            return False
        key = f"{view.name}@{view.version}"
        if key not in self._rows:
            rel = self.relation(view)
            self._rows[key] = int(
                self.connection.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0]
            )
        return self._rows[key] >= RANGE_JOIN_RATIO * entity_rows

    def _view_cte(self, view: AnyView, columns: Sequence[str], alias: str) -> str:
        cols = self.columns(view)
        ts = ts_expr(view.timestamp_field, cols)
        parts = [quote(k) for k in view.join_keys] + [f"{ts} AS __ts"]
        if view.created_timestamp_field:
            cr = ts_expr(view.created_timestamp_field, cols)
            parts.append(f"COALESCE({cr}, {ts}) AS __cr")
        else:
            parts.append(f"{ts} AS __cr")
        parts += [f"{quote(c)} AS {quote(f'{alias}_{n}')}" for n, c in enumerate(columns)]
        if isinstance(view, FeatureView):  # what orders rows tied on both times
            parts += [f"{quote(f)} AS __o{n}" for n, f in enumerate(view.feature_names)]
        return f"{alias} AS NOT MATERIALIZED (SELECT {', '.join(parts)} FROM {self.relation(view)})"

    def training_frame(
        self,
        entity_df: pd.DataFrame,
        timestamp_field: str,
        requests: Sequence[ViewRequest],
        output: str,
    ) -> Any:
        """Entity rows with the requested features as of each row's timestamp.

        The entity columns come back as given (values, dtypes and time zones); only the
        join keys and the timestamp go through DuckDB.
        """
        keys = list(dict.fromkeys(k for r in requests for k in r.view.join_keys))
        used = [c for c in entity_df.columns if c in {*keys, timestamp_field}]
        entity = entity_df[used].assign(**{_ROW: range(len(entity_df))})
        name = "__entity_df"
        self.connection.register(name, entity)
        try:
            rows = self.connection.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
            ts = ts_expr(timestamp_field, {str(r[0]): str(r[1]) for r in rows})
            sql = self._training_sql(ts, requests, name, len(entity_df))
            rel = self.connection.sql(sql)
            if output == "arrow":
                import pyarrow as pa

                table = rel.to_arrow_table()
                position = entity_order(table.column(_ROW).to_numpy(), len(entity_df))
                features = table.drop_columns([_ROW]).take(position)
                out = pa.Table.from_pandas(entity_df, preserve_index=False)
                for column_name, column in zip(
                    features.column_names, features.columns, strict=True
                ):
                    out = out.append_column(column_name, column)
                return out
            frame = rel.df()
        finally:
            self.connection.unregister(name)
        position = entity_order(frame[_ROW].to_numpy(), len(entity_df))
        features = frame.drop(columns=[_ROW]).take(position).reset_index(drop=True)
        return pd.concat([entity_df.reset_index(drop=True), features], axis=1)

    def _training_sql(
        self,
        entity_ts: str,
        requests: Sequence[ViewRequest],
        entity_name: str,
        entity_rows: int = 0,
    ) -> str:
        """The features of each entity row, with its ``__row``; ``entity_ts`` is the SQL
        of the entity timestamp as a naive UTC ``TIMESTAMP``."""
        e_cte = f"e AS (SELECT *, {entity_ts} AS {_T} FROM {entity_name})"
        sources: list[str] = []
        dependents: list[str] = []
        asof_cols: list[str] = []
        asof_joins: list[str] = []
        after: list[str] = []
        finals: list[str] = []
        for i, req in enumerate(requests):
            view = req.view
            if isinstance(view, StreamFeatureView):
                sources.append(self._view_cte(view, view.value_columns, f"s{i}"))
                dependents.append(_window_cte(i, view, req.features))
                after.append(f"LEFT JOIN w{i} USING ({_ROW})")
                finals += [_window_final(i, n, view, f) for n, f in enumerate(req.features)]
                continue
            alias = f"v{i}"
            sources.append(self._view_cte(view, req.features, alias))
            cols = [quote(f"{alias}_{n}") for n in range(len(req.features))]
            if self._use_range_join(view, entity_rows):
                dependents.append(_range_cte(i, view, cols))
                after.append(f"LEFT JOIN r{i} USING ({_ROW})")
                finals += [
                    f"r{i}.{col} AS {quote(feat)}"
                    for col, feat in zip(cols, req.features, strict=True)
                ]
                continue
            on = " AND ".join(f"e.{quote(k)} = {alias}.{quote(k)}" for k in view.join_keys)
            asof_joins.append(f"ASOF LEFT JOIN {alias} ON {on} AND e.{_T} >= {alias}.__ts")
            asof_cols += [f"{alias}.{quote(f'{alias}_{n}')}" for n in range(len(req.features))]
            # One boolean per view, computed once (not per feature column): the matched
            # row is within the TTL (NULL when nothing matched).
            fresh = "TRUE"
            if view.ttl_us is not None:
                fresh = f"{alias}.__ts >= e.{_T} - to_microseconds({view.ttl_us})"
            asof_cols.append(f"{fresh} AS __fresh{i}")
            # The matched row is one of several at its event time (the ASOF join picked
            # one arbitrarily) or arrived after the event: the fallback row (TTL-checked
            # in its join) replaces it, or NULL when there is none.
            asof_cols.append(f"{alias}.__ts AS __m{i}")
            recheck = f"t{i}.__tied"
            if view.created_timestamp_field:
                asof_cols.append(f"{alias}.__cr > e.{_T} AS __late{i}")
                recheck = f"j.__late{i} OR {recheck}"
            dependents += [_tied_cte(i, view), _fallback_cte(i, view, cols)]
            after += [f"LEFT JOIN t{i} USING ({_ROW})", f"LEFT JOIN fb{i} USING ({_ROW})"]
            pick = f"WHEN {recheck} THEN fb{i}.{{col}} WHEN j.__fresh{i} THEN j.{{col}}"
            finals += [
                f"CASE {pick.format(col=col)} END AS {quote(feat)}"
                for col, feat in zip(cols, req.features, strict=True)
            ]
        mat = "MATERIALIZED " if any(d.startswith("fb") for d in dependents) else ""
        j_cte = f"j AS {mat}(SELECT {', '.join(['e.*', *asof_cols])} FROM e {' '.join(asof_joins)})"
        ctes = [e_cte, *sources, j_cte, *dependents]
        # No ORDER BY: entity_order puts the rows back in entity order, cheaper than a sort.
        return (
            f"WITH {', '.join(ctes)} SELECT {', '.join([*finals, f'j.{_ROW}'])} "
            f"FROM j {' '.join(after)}"
        )


def entity_order(rows: Any, count: int) -> Any:
    """Positions that put a result back in entity-frame order, given its ``__row``
    column (a permutation of 0..count-1: every join yields one row per entity row)."""
    if len(rows) != count:
        raise RuntimeError(f"training frame has {len(rows)} rows for {count} entity rows")
    position = np.empty(count, dtype=np.int64)
    position[rows] = np.arange(count, dtype=np.int64)
    return position


def key_hash(keys: Sequence[str], types: dict[str, str]) -> str:
    """A hash of the join keys that is equal wherever the keys join as equal: numbers as
    ``DOUBLE`` (an integer key matches a float key holding the same number, as pandas
    makes of an integer column with missing values), anything else as text."""
    parts = []
    for key in keys:
        family = type_family(types.get(key, "VARCHAR"))
        kind = "DOUBLE" if family in ("integer", "float") else "VARCHAR"
        parts.append(f"CAST({quote(key)} AS {kind})")
    return f"hash({', '.join(parts)})"


def ts_expr(column: str, types: dict[str, str]) -> str:
    """A column as a naive UTC ``TIMESTAMP`` (the session time zone is UTC)."""
    kind = types.get(column, "").upper()
    if kind == "TIMESTAMP":
        return quote(column)
    # timezone('UTC', ...), not a cast: DuckDB 2.0 pushes CAST(... AS TIMESTAMP) into
    # read_csv, which then drops the offset of ISO strings ("01:10+01:00" -> 01:10)
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"timezone('UTC', {quote(column)})"
    if kind == "VARCHAR":  # ISO strings, with or without an offset
        return f"timezone('UTC', CAST({quote(column)} AS TIMESTAMPTZ))"
    return f"CAST({quote(column)} AS TIMESTAMP)"


def latest_first(view: FeatureView, alias: str) -> str:
    """The ORDER BY that puts a view CTE's latest row first (see the module docstring)."""
    order = [f"{alias}.__ts DESC", f"{alias}.__cr DESC"]
    order += [f"{alias}.__o{n} DESC NULLS LAST" for n in range(len(view.feature_names))]
    return ", ".join(order)


def _tied_cte(i: int, view: FeatureView) -> str:
    """The entity rows whose ASOF match shares its key and event time with other rows.

    A hash join probing the view with the matched pairs: cheaper than finding every tied
    pair of the view (a 2M-row view: 0.8 s to group, against one scan here).
    """
    on = " AND ".join(f"j.{quote(k)} = v.{quote(k)}" for k in view.join_keys)
    return (
        f"t{i} AS (SELECT j.{_ROW}, TRUE AS __tied FROM j JOIN v{i} v ON {on} "
        f"AND v.__ts = j.__m{i} GROUP BY j.{_ROW} HAVING count(*) > 1)"
    )


def _fallback_cte(i: int, view: FeatureView, cols: Sequence[str]) -> str:
    """Latest row known at the event time, for the rows whose ASOF match is late or tied."""
    on = " AND ".join(f"j.{quote(k)} = v.{quote(k)}" for k in view.join_keys)
    picked = ", ".join(f"v.{c}" for c in cols)
    ttl = "" if view.ttl_us is None else f" AND v.__ts >= j.{_T} - to_microseconds({view.ttl_us})"
    which = f"j.{_ROW} IN (SELECT {_ROW} FROM t{i})"
    if view.created_timestamp_field:
        which = f"j.__late{i} OR {which}"
    return (
        f"fb{i} AS (SELECT j.{_ROW}, {picked} FROM j JOIN v{i} v ON {on} "
        f"AND v.__ts <= j.{_T} AND v.__cr <= j.{_T}{ttl} WHERE {which} "
        f"QUALIFY row_number() OVER (PARTITION BY j.{_ROW} ORDER BY {latest_first(view, 'v')}) = 1)"
    )


def _range_cte(i: int, view: FeatureView, cols: Sequence[str]) -> str:
    """Latest usable row per entity row by a range join bounded by the view's TTL."""
    on = " AND ".join(f"e.{quote(k)} = v.{quote(k)}" for k in view.join_keys)
    ttl = "" if view.ttl_us is None else f" AND v.__ts >= e.{_T} - to_microseconds({view.ttl_us})"
    created = f" AND v.__cr <= e.{_T}" if view.created_timestamp_field else ""
    picked = ", ".join(f"v.{c}" for c in cols)
    return (
        f"r{i} AS (SELECT e.{_ROW}, {picked} FROM e JOIN v{i} v ON {on} "
        f"AND v.__ts <= e.{_T}{ttl}{created} "
        f"QUALIFY row_number() OVER (PARTITION BY e.{_ROW} ORDER BY {latest_first(view, 'v')}) = 1)"
    )


_AGG_SQL = {
    "count": "count(*) {f}",
    "sum": "sum(CAST({c} AS DOUBLE)) {f}",
    "mean": "avg(CAST({c} AS DOUBLE)) {f}",
    "min": "min(CAST({c} AS DOUBLE)) {f}",
    "max": "max(CAST({c} AS DOUBLE)) {f}",
    "count_distinct": "count(DISTINCT {c}) {f}",
}


def _window_cte(i: int, view: StreamFeatureView, features: Sequence[str]) -> str:
    """Window aggregates as of each entity row ``t``: one range join over the longest
    window, events stamped in ``[t - window, t)`` and created before ``t``."""
    by_name = {a.name: a for a in view.aggregations}
    value_cols = {c: quote(f"s{i}_{n}") for n, c in enumerate(view.value_columns)}
    on = " AND ".join(f"e.{quote(k)} = s.{quote(k)}" for k in view.join_keys)
    aggs = []
    for n, feat in enumerate(features):
        agg = by_name[feat]
        col = f"s.{value_cols[agg.column]}" if agg.column else ""
        where = f"FILTER (WHERE s.__ts >= e.{_T} - to_microseconds({agg.window_us}))"
        aggs.append(f"{_AGG_SQL[agg.function].format(c=col, f=where)} AS {quote(f'w{i}_{n}')}")
    # strictly before the row's time, as online (see _windows): the row's own event is out
    created = f" AND s.__cr < e.{_T}" if view.created_timestamp_field else ""
    return (
        f"w{i} AS (SELECT e.{_ROW}, {', '.join(aggs)} FROM e JOIN s{i} s ON {on} "
        f"AND s.__ts < e.{_T} AND s.__ts >= e.{_T} - to_microseconds({view.max_window_us})"
        f"{created} GROUP BY e.{_ROW})"
    )


def _window_final(i: int, n: int, view: StreamFeatureView, feature: str) -> str:
    agg = {a.name: a for a in view.aggregations}[feature]
    col = f"w{i}.{quote(f'w{i}_{n}')}"
    if agg.function in ("count", "count_distinct"):
        return f"COALESCE({col}, 0) AS {quote(feature)}"
    if agg.function == "sum":
        return f"COALESCE({col}, 0.0) AS {quote(feature)}"
    return f"{col} AS {quote(feature)}"


def check_schema(view: AnyView, columns: dict[str, str]) -> None:
    """Refuse a source whose columns do not match the view's declaration."""
    problems = []
    for name, declared in view.source_columns().items():
        if name not in columns:
            problems.append(f"'{name}' is missing (declared {declared})")
            continue
        if declared in ("key", "any"):
            continue
        family = type_family(columns[name])
        expected = DTYPES.get(declared, declared)
        if family != expected and not (expected == "float" and family == "integer"):
            problems.append(f"'{name}' is {columns[name]}, declared {declared}")
    if problems:
        raise SchemaMismatchError(
            f"Source of feature view '{view.name}' does not match its schema: "
            f"{'; '.join(problems)}. Source columns: "
            f"{', '.join(f'{c} {t}' for c, t in columns.items())}."
        )


def _literal(ts: datetime) -> str:
    """A naive UTC ``TIMESTAMP`` literal (an aware datetime is converted to UTC)."""
    return f"TIMESTAMP '{from_us(to_us(ts)).isoformat(sep=' ')}'"


def latest_rows_sql(store: OfflineStore, view: FeatureView, start: datetime, end: datetime) -> str:
    """The latest row per entity among the rows that became known in ``[start, end)``.

    A row is known once its event time and its created time have both passed: both are
    before ``end``, and one of them is at or after ``start``, so a row created after
    its event time is written by the run in which it arrived. "Latest" is the order of
    the training frame (:func:`latest_first`); ``__cr`` goes to the online store, which
    keeps the newest row by the same times. Rows with a null join key are skipped.
    """
    cols = store.columns(view)
    ts = ts_expr(view.timestamp_field, cols)
    cr = ts
    if view.created_timestamp_field:
        cr = f"COALESCE({ts_expr(view.created_timestamp_field, cols)}, {ts})"
    keys = ", ".join(quote(k) for k in view.join_keys)
    feats = [quote(f) for f in view.feature_names]
    inner = ", ".join(
        [keys, f"{ts} AS __ts", f"{cr} AS __cr", *feats]
        + [f"{f} AS __o{n}" for n, f in enumerate(feats)]
    )
    not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in view.join_keys)
    created = ", __cr" if view.created_timestamp_field else ""
    return (
        f"SELECT {keys}, __ts{created}, {', '.join(feats)} FROM "
        f"(SELECT {inner} FROM {store.relation(view)} WHERE {not_null}) v "
        f"WHERE __ts < {_literal(end)} AND __cr < {_literal(end)} "
        f"AND greatest(__ts, __cr) >= {_literal(start)} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {latest_first(view, 'v')}) = 1 "
        f"ORDER BY {keys}"
    )


def events_sql(store: OfflineStore, view: StreamFeatureView, start: datetime, end: datetime) -> str:
    """A stream view's events that became known in ``[start, end)`` and can still fall in a
    window as of ``end``, oldest first.

    Known: stamped and (with a ``created_timestamp_field``) created before ``end``, one
    of the two at or after ``start``, so an event created after its run's ``end`` is
    written by the next run even though its event time is older. In a window as of
    ``end``: stamped at or after ``end`` minus the longest window. Events with a null
    join key are skipped (an entity row with a null key matches no event offline).
    With a ``created_timestamp_field``, ``__cr`` is the created time (null: the event
    time), part of the event's identity online.
    """
    cols = store.columns(view)
    ts = ts_expr(view.timestamp_field, cols)
    cr = ts
    if view.created_timestamp_field:
        cr = f"COALESCE({ts_expr(view.created_timestamp_field, cols)}, {ts})"
    keys = ", ".join(quote(k) for k in view.join_keys)
    values = "".join(f", {quote(c)}" for c in view.value_columns)
    not_null = "".join(f" AND {quote(k)} IS NOT NULL" for k in view.join_keys)
    oldest = from_us(to_us(end) - view.max_window_us)
    created = ", __cr" if view.created_timestamp_field else ""
    return (
        f"SELECT {keys}, __ts{created}{values} FROM (SELECT {keys}, {ts} AS __ts, "
        f"{cr} AS __cr{values} FROM {store.relation(view)}) v WHERE __ts >= {_literal(oldest)} "
        f"AND __ts < {_literal(end)} AND __cr < {_literal(end)} "
        f"AND greatest(__ts, __cr) >= {_literal(start)}{not_null} ORDER BY __ts"
    )
