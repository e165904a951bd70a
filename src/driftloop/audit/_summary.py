"""Aggregates of the prediction log, computed by the database: requests, fallback answers,
latency and labels per model, version and route, and the newest predictions.

A dashboard asks these questions of 100,000 predictions on every page view: the SQL logs
answer them with one ``GROUP BY`` over the time index (no row reaches Python); another
:class:`~driftloop.audit.AuditLog` answers from its ``window`` frame, vectorised.
Compacted (Parquet) predictions are not counted: these are the database's recent rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import utc
from driftloop.audit._sql import SqlAuditLog, from_us, to_us
from driftloop.audit._sqlite import SqliteAuditLog
from driftloop.core.errors import InvalidParameterError

__all__ = [
    "LATENCY_EDGES_MS",
    "SCORE_EDGES",
    "RouteSummary",
    "entity_predictions",
    "newest_predictions",
    "route_summary",
]

_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))  # pandas' range

# Upper edges of the latency histogram's bins (the last bin is everything slower).
LATENCY_EDGES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
# Upper edges of the score histogram's bins: tenths (scores under 0 fall in the first,
# 1 and over in the last).
SCORE_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class RouteSummary:
    """Predictions of one model version on one route (``v1``, ``v2``, ``shadow``, and
    ``<proto>:<link>`` for answers of the fallback chain) between ``start`` and ``end``.

    ``latency_bins`` counts latencies under each of :data:`LATENCY_EDGES_MS` (and one more
    bin above the last); latency fields are None when the log does not keep latency.
    ``score_bins`` counts scores per bin of :data:`SCORE_EDGES` (empty when not counted).
    """

    model: str
    version: str
    route: str
    requests: int
    labelled: int
    mean_score: float | None
    mean_latency_ms: float | None
    max_latency_ms: float | None
    latency_bins: tuple[int, ...]
    first: datetime
    last: datetime
    score_bins: tuple[int, ...] = ()

    @property
    def fallback(self) -> bool:
        """Answered by a link of the fallback chain, not by the model's version: the arm
        routed to failed (``champion``: a failed challenger's requests answered by the
        champion; ``rules``, ``default``: the model's own fallback)."""
        return ":" in self.route

    def latency_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of latency in ms (``0.99``: p99), read from the histogram:
        the bin holding it, linearly within the bin (its upper edge never past the
        slowest latency). Its error is at most the bin's width (:data:`LATENCY_EDGES_MS`);
        None without latencies.

        >>> arm = RouteSummary("m", "1", "v1", 100, 0, 0.5, 3.0, 12.0, (10, 80, 6, 2, 2, 0,
        ...     0, 0, 0, 0, 0), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
        >>> arm.latency_quantile(0.5), arm.latency_quantile(0.99)
        (1.5, 11.0)
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"Quantile q={q!r} is not within [0, 1].")
        total = sum(self.latency_bins)
        if not total or self.max_latency_ms is None:
            return None
        top = self.max_latency_ms
        rank, below = q * total, 0
        for i, n in enumerate(self.latency_bins):
            if n and below + n >= rank:
                lo = LATENCY_EDGES_MS[i - 1] if i else 0.0
                hi = min(LATENCY_EDGES_MS[i], top) if i < len(LATENCY_EDGES_MS) else top
                lo = min(lo, hi)
                return lo + (hi - lo) * (rank - below) / n
            below += n
        return top

    @property
    def link(self) -> str:
        """Who answered: ``model`` (the routed version itself) or the fallback link."""
        return self.route.partition(":")[2] or "model"


def _span(
    log: SqlAuditLog, start: datetime | None, end: datetime | None, last: timedelta
) -> tuple[int, int]:
    """``[start, end)`` in microseconds; without a start, ``last`` before the newest row."""
    if start is not None:
        hi = to_us(end) if end is not None else 2**62
        return to_us(start), hi
    with log._transaction(write=False) as cur:
        cur.execute(f"SELECT MAX(ts_us) FROM {log._t('predictions')}")
        newest = cur.fetchone()[0]
    hi = int(newest) + 1 if newest is not None else 0
    hi = to_us(end) if end is not None else hi
    return hi - int(last.total_seconds() * 1e6), hi


def route_summary(
    log: AuditLog,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    last: timedelta = timedelta(days=1),
    max_rows: int | None = None,
) -> list[RouteSummary]:
    """Per model, version and route: requests, labels, mean score, latency (mean, max and
    a histogram) of predictions with ``start <= ts < end``; without ``start``, the
    ``last`` (a day) before the newest prediction. Sorted by model, version, route.

    On SQLite, whole hours are read from the hourly rollups its triggers keep
    (``audit_route_hours``, revision ``a0004_ui_route_hours``) and only the partial hours
    at the span's ends from the predictions: the cost follows the span's hours, not its
    predictions. Other SQL logs (PostgreSQL) sum the span's predictions; ``max_rows``
    bounds that work to the span's newest ``max_rows`` predictions: when the summaries'
    requests add up to ``max_rows``, the span was cut, and their ``first`` tells where
    the counted part starts."""
    if not isinstance(log, SqlAuditLog):
        return _from_frame(log, start, end, last)
    if max_rows is not None and max_rows < 1:
        raise InvalidParameterError(f"max_rows must be at least 1, got {max_rows}.")
    lo, hi = _span(log, start, end, last)
    parts: list[tuple[Any, ...]] = []
    with log._transaction(write=False) as cur:
        first_hour, last_hour = -(-lo // HOUR_US), hi // HOUR_US
        if isinstance(log, SqliteAuditLog) and first_hour < last_hour:
            parts += _rows(cur, log, _HOURS, [first_hour, last_hour])
            parts += _rows(cur, log, _RAW, [lo, first_hour * HOUR_US])
            parts += _rows(cur, log, _RAW, [last_hour * HOUR_US, hi])
        elif max_rows is not None and not isinstance(log, SqliteAuditLog):
            parts += _rows(cur, log, _NEWEST, [lo, hi, max_rows])
        else:
            parts += _rows(cur, log, _RAW, [lo, hi])
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for model, version, route, n, labelled, *rest in parts:
        if not n:  # an hour whose predictions were all compacted away
            continue
        score, ms, max_ms, first_us, last_us, *bins = rest
        key = (str(model), str(version), str(route))
        if key not in merged:
            merged[key] = [0, 0, 0.0, 0.0, None, first_us, last_us, [0] * len(bins)]
        m = merged[key]
        m[0] += int(n)
        m[1] += int(labelled)
        m[2] += float(score or 0.0)
        m[3] += float(ms or 0.0)
        m[4] = max_ms if m[4] is None else max(m[4], max_ms)
        m[5], m[6] = min(m[5], first_us), max(m[6], last_us)
        m[7] = [a + int(b or 0) for a, b in zip(m[7], bins, strict=True)]
    return [
        RouteSummary(
            model=model,
            version=version,
            route=route,
            requests=n,
            labelled=labelled,
            mean_score=score / n,
            mean_latency_ms=ms / n,
            max_latency_ms=None if max_ms is None else float(max_ms),
            latency_bins=tuple(bins[:_LATENCY_N]),
            score_bins=tuple(bins[_LATENCY_N:]),
            first=from_us(int(first_us)),
            last=from_us(int(last_us)),
        )
        for (model, version, route), (n, labelled, score, ms, max_ms, first_us, last_us, bins) in (
            sorted(merged.items())
        )
    ]


_LATENCY_N = len(LATENCY_EDGES_MS) + 1


def _bins(value: str, edges: tuple[float, ...]) -> str:
    """SQL summing, per bin of ``edges``, the rows whose ``value`` falls in it."""
    lows, highs = (None, *edges), (*edges, None)
    flags = [
        " AND ".join(
            ([f"{value} >= {lo}"] if lo is not None else [])
            + ([f"{value} < {hi}"] if hi is not None else [])
        )
        for lo, hi in zip(lows, highs, strict=True)
    ]
    return ", ".join(f"SUM(CASE WHEN {flag} THEN 1 ELSE 0 END)" for flag in flags)


HOUR_US = 3_600_000_000
# predictions in [?, ?) as partial aggregates; whole hours [?, ?) from the rollups
_RAW = (
    "SELECT p.model, p.version, p.route, COUNT(*), COUNT(l.prediction_id), SUM(p.score), "
    "SUM(p.latency_ms), MAX(p.latency_ms), MIN(p.ts_us), MAX(p.ts_us), "
    f"{_bins('p.latency_ms', LATENCY_EDGES_MS)}, {_bins('p.score', SCORE_EDGES)} "
    "FROM {predictions} p LEFT JOIN {labels} l ON l.prediction_id = p.prediction_id "
    "WHERE p.ts_us >= ? AND p.ts_us < ? GROUP BY p.model, p.version, p.route"
)
# the same, over the span's newest ? predictions only (an index scan of the time index
# backwards, stopped after them)
_NEWEST = _RAW.replace(
    "FROM {predictions} p LEFT JOIN",
    "FROM (SELECT * FROM {predictions} WHERE ts_us >= ? AND ts_us < ? "
    "ORDER BY ts_us DESC LIMIT ?) p LEFT JOIN",
).replace("WHERE p.ts_us >= ? AND p.ts_us < ? GROUP BY", "GROUP BY")
_HOURS = (
    "SELECT model, version, route, SUM(requests), SUM(labelled), SUM(score_sum), "
    "SUM(latency_sum), MAX(latency_max), MIN(first_us), MAX(last_us), "
    f"{', '.join(f'SUM(b{i})' for i in range(_LATENCY_N))}, "
    f"{', '.join(f'SUM(s{i})' for i in range(len(SCORE_EDGES) + 1))} "
    "FROM audit_route_hours WHERE hour >= ? AND hour < ? AND requests > 0 "
    "GROUP BY model, version, route"
)


def _rows(cur: Any, log: SqlAuditLog, query: str, params: list[int]) -> list[tuple[Any, ...]]:
    if params[0] >= params[1]:  # an empty span
        return []
    text = query.format(predictions=log._t("predictions"), labels=log._t("labels"))
    cur.execute(log._sql(text), params)
    return [tuple(row) for row in cur.fetchall()]


def _from_frame(
    log: AuditLog, start: datetime | None, end: datetime | None, last: timedelta
) -> list[RouteSummary]:
    lo = utc(start) if start is not None else _EVER[0]
    hi = utc(end) if end is not None else _EVER[1]
    frame = log.window(lo, hi)
    if start is None and not frame.empty:
        frame = frame[frame["ts"] >= frame["ts"].max() - pd.Timedelta(last)]
    groups = frame.groupby(["model", "version", "route"], sort=True)
    table = groups.agg(
        requests=("prediction_id", "size"),
        labelled=("label", "count"),
        mean_score=("score", "mean"),
        first=("ts", "min"),
        last=("ts", "max"),
    )
    return [
        RouteSummary(
            model=str(row["model"]),
            version=str(row["version"]),
            route=str(row["route"]),
            requests=int(row["requests"]),
            labelled=int(row["labelled"]),
            mean_score=float(row["mean_score"]),
            mean_latency_ms=None,
            max_latency_ms=None,
            latency_bins=(),
            first=pd.Timestamp(row["first"]).to_pydatetime(),
            last=pd.Timestamp(row["last"]).to_pydatetime(),
        )
        for row in table.reset_index().to_dict("records")
    ]


_LEAN = ["prediction_id", "ts", "model", "version", "route", "score", "decision", "label"]


def newest_predictions(log: AuditLog, model: str | None = None, limit: int = 20) -> pd.DataFrame:
    """The ``limit`` newest predictions (of ``model``, or of all), newest first: their id,
    time, model, version, route, score, decision and label."""
    if not isinstance(log, SqlAuditLog):
        frame = log.window(*_EVER, model=model)
        return frame.sort_values("ts", ascending=False).head(limit)[_LEAN]
    where, params = ("WHERE p.model = ?", [model]) if model is not None else ("", [])
    return _lean(log, where, params, limit)


def entity_predictions(
    log: AuditLog, name: str, value: str, *, models: Sequence[str] | None = None, limit: int = 200
) -> pd.DataFrame:
    """The ``limit`` newest predictions of the entity ``name`` = ``value`` (by ``models``
    only, when given), newest first, with the columns of :func:`newest_predictions` (not
    the features and explanations that ``AuditLog.by_entity`` decodes)."""
    if not isinstance(log, SqlAuditLog):
        frame = log.by_entity(name, value)
        if models is not None:
            frame = frame[frame["model"].isin(list(models))]
        return frame.sort_values("ts", ascending=False).head(limit)[_LEAN]
    ids = log._entity_ids("name = ? AND value = ?", name, value)
    where = f"WHERE p.prediction_id IN ({ids})"
    params: list[Any] = [name, value] * 2  # merged and staged entity rows
    if models is not None:
        if not models:
            return _lean(log, "WHERE 1 = 0", [], 0)
        where += f" AND p.model IN ({', '.join('?' * len(models))})"
        params += list(models)
    return _lean(log, where, params, limit)


def _lean(log: SqlAuditLog, where: str, params: list[Any], limit: int) -> pd.DataFrame:
    columns = _LEAN
    query = (
        "SELECT p.prediction_id, p.ts_us, p.model, p.version, p.route, p.score, p.decision, "
        f"l.label FROM {log._t('predictions')} p "
        f"LEFT JOIN {log._t('labels')} l ON l.prediction_id = p.prediction_id {where} "
        "ORDER BY p.ts_us DESC LIMIT ?"
    )
    with log._transaction(write=False) as cur:
        cur.execute(log._sql(query), [*params, int(limit)])
        rows = list(cur.fetchall())
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = [from_us(int(us)) for us in frame["ts"]]
    frame["label"] = pd.to_numeric(frame["label"]).astype("float64")
    return frame
