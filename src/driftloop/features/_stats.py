"""Statistics of a feature view's source: rows, null rates, freshness, quantiles.

One DuckDB query per view. The result is a plain dict, recorded per materialization
in the registry database (``feature_stats``) so monitoring can chart it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from driftloop.features._definitions import FeatureView
from driftloop.features._offline import OfflineStore, quote, ts_expr, type_family
from driftloop.features._time import now_utc
from driftloop.features._windows import StreamFeatureView

__all__ = ["QUANTILES", "view_stats"]

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)


def view_stats(
    offline: OfflineStore,
    view: FeatureView | StreamFeatureView,
    *,
    until: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Row count, per-column null rate and quantiles, and the newest row's age.

    ``until`` limits the rows to those stamped before it (a materialization's end);
    freshness is measured at ``now`` (default: ``until`` or the current time).
    """
    types = offline.columns(view)
    ts = ts_expr(view.timestamp_field, types)
    columns = view.value_columns if isinstance(view, StreamFeatureView) else view.feature_names
    numeric = [c for c in columns if type_family(types[c]) in ("integer", "float")]
    parts = ["count(*)", f"max({ts})"]
    parts += [f"count({quote(c)})" for c in columns]
    qs = ", ".join(str(q) for q in QUANTILES)
    parts += [f"quantile_cont(CAST({quote(c)} AS DOUBLE), [{qs}])" for c in numeric]
    where = f" WHERE {ts} < TIMESTAMP '{until.isoformat(sep=' ')}'" if until else ""
    sql = f"SELECT {', '.join(parts)} FROM {offline.relation(view)}{where}"
    row = offline.connection.execute(sql).fetchall()[0]
    count, newest = int(row[0]), row[1]
    counts = row[2 : 2 + len(columns)]
    quantiles = dict(zip(numeric, row[2 + len(columns) :], strict=True))
    at = now or until or now_utc()
    stats_columns: dict[str, Any] = {}
    for c, non_null in zip(columns, counts, strict=True):
        entry: dict[str, Any] = {
            "null_rate": (1.0 - int(non_null) / count) if count else None,
            "dtype": types[c],
        }
        if c in quantiles and quantiles[c] is not None:
            entry["quantiles"] = {str(q): v for q, v in zip(QUANTILES, quantiles[c], strict=True)}
        stats_columns[c] = entry
    return {
        "view": view.name,
        "view_version": view.version,
        "computed_at": now_utc(),
        "row_count": count,
        "newest": newest,
        "freshness_s": (at - newest).total_seconds() if newest is not None else None,
        "columns": stats_columns,
    }
