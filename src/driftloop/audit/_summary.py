"""Aggregates of the prediction log, computed by the database: requests, fallback answers,
latency and labels per model, version and route, and the newest predictions.

A dashboard asks these questions of 100,000 predictions on every page view: the SQL logs
answer them with one ``GROUP BY`` over the time index (no row reaches Python); another
:class:`~driftloop.audit.AuditLog` answers from its ``window`` frame, vectorised.
Compacted (Parquet) predictions are not counted: these are the database's recent rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import utc
from driftloop.audit._sql import SqlAuditLog, from_us, to_us

__all__ = ["LATENCY_EDGES_MS", "RouteSummary", "newest_predictions", "route_summary"]

_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))  # pandas' range

# Upper edges of the latency histogram's bins (the last bin is everything slower).
LATENCY_EDGES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


@dataclass(frozen=True)
class RouteSummary:
    """Predictions of one model version on one route (``v1``, ``v2``, ``shadow``, and
    ``<proto>:<link>`` for answers of the fallback chain) between ``start`` and ``end``.

    ``latency_bins`` counts latencies under each of :data:`LATENCY_EDGES_MS` (and one more
    bin above the last); latency fields are None when the log does not keep latency.
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

    @property
    def fallback(self) -> bool:
        """Answered by a link of the fallback chain, not by the model's version: the arm
        routed to failed (``champion``: a failed challenger's requests answered by the
        champion; ``rules``, ``default``: the model's own fallback)."""
        return ":" in self.route

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
) -> list[RouteSummary]:
    """Per model, version and route: requests, labels, mean score, latency (mean, max and
    a histogram) of predictions with ``start <= ts < end``; without ``start``, the
    ``last`` (a day) before the newest prediction. Sorted by model, version, route."""
    if not isinstance(log, SqlAuditLog):
        return _from_frame(log, start, end, last)
    lo, hi = _span(log, start, end, last)
    below = "SUM(CASE WHEN p.latency_ms < {} THEN 1 ELSE 0 END)"
    bins = ", ".join(below.format(edge) for edge in LATENCY_EDGES_MS)
    query = (
        "SELECT p.model, p.version, p.route, COUNT(*), COUNT(l.label), AVG(p.score), "
        f"AVG(p.latency_ms), MAX(p.latency_ms), MIN(p.ts_us), MAX(p.ts_us), {bins} "
        f"FROM {log._t('predictions')} p "
        f"LEFT JOIN {log._t('labels')} l ON l.prediction_id = p.prediction_id "
        "WHERE p.ts_us >= ? AND p.ts_us < ? GROUP BY p.model, p.version, p.route "
        "ORDER BY p.model, p.version, p.route"
    )
    with log._transaction(write=False) as cur:
        cur.execute(log._sql(query), [lo, hi])
        rows = list(cur.fetchall())
    out = []
    for row in rows:
        model, version, route, n, labelled, score, mean_ms, max_ms, first_us, last_us = row[:10]
        under = [int(c) for c in row[10:]]
        counts = [b - a for a, b in zip([0, *under], under, strict=False)]
        out.append(
            RouteSummary(
                model=str(model),
                version=str(version),
                route=str(route),
                requests=int(n),
                labelled=int(labelled),
                mean_score=None if score is None else float(score),
                mean_latency_ms=None if mean_ms is None else float(mean_ms),
                max_latency_ms=None if max_ms is None else float(max_ms),
                latency_bins=(*counts, int(n) - under[-1]),
                first=from_us(int(first_us)),
                last=from_us(int(last_us)),
            )
        )
    return out


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


def newest_predictions(log: AuditLog, model: str | None = None, limit: int = 20) -> pd.DataFrame:
    """The ``limit`` newest predictions (of ``model``, or of all), newest first: their id,
    time, model, version, route, score, decision and label."""
    columns = ["prediction_id", "ts", "model", "version", "route", "score", "decision", "label"]
    if not isinstance(log, SqlAuditLog):
        frame = log.window(*_EVER, model=model)
        return frame.sort_values("ts", ascending=False).head(limit)[columns]
    where, params = ("WHERE p.model = ?", [model]) if model is not None else ("", [])
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
