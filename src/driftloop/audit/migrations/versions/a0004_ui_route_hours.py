"""Hourly rollups of predictions per model, version and route, kept by the database.

``audit_route_hours`` holds, per hour (``hour`` = ``ts_us`` // 3,600,000,000), model,
version and route: requests, labelled requests, sums of score and latency, the slowest
latency, the first and last ``ts_us``, a latency histogram (``b0``..``b10``: under
1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 ms, then the rest: the edges of
``driftloop.audit.LATENCY_EDGES_MS`` when this revision was written) and a score
histogram (``s0``..``s9``: tenths of [0, 1), scores under 0 in the first, 1 and over in
the last: ``SCORE_EDGES``). SQLite triggers keep
it exact as rows come and go: a prediction inserted (a duplicate id inserts nothing) or
deleted (compaction), a label inserted or deleted (a label changed is an update: the count
stays). Existing rows are rolled up once, here. A summary of any span then reads a few
rows per hour instead of every prediction (the dashboard's traffic page: 100,000
predictions summed by SQLite cost ~200 ms, their hours ~1 ms).

PostgreSQL gets no rollup (its aggregate over a time range is fast enough, and a row per
hour updated by every writing server would serialise their commits): only SQLite.
Deleting a prediction leaves its hour's ``latency_max``, ``first_us`` and ``last_us`` as
they were (an hour compacted whole has ``requests`` 0 and is skipped by readers).
"""

from __future__ import annotations

from alembic import op

revision = "a0004_ui_route_hours"
down_revision = "a0003"
branch_labels = None
depends_on = None

EDGES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
SCORE_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
HOUR_US = 3_600_000_000
_LATENCY_BINS = [f"b{i}" for i in range(len(EDGES_MS) + 1)]
_SCORE_BINS = [f"s{i}" for i in range(len(SCORE_EDGES) + 1)]
_BINS = _LATENCY_BINS + _SCORE_BINS


def _edge_flags(value: str, edges: tuple[float, ...]) -> list[str]:
    """Per bin, an SQL expression that is 1 when ``value`` falls in it, else 0."""
    lows = (None, *edges)
    highs = (*edges, None)
    out = []
    for lo, hi in zip(lows, highs, strict=True):
        parts = ([f"{value} >= {lo}"] if lo is not None else []) + (
            [f"{value} < {hi}"] if hi is not None else []
        )
        out.append(f"({' AND '.join(parts)})")
    return out


def _bin_flags(row: str) -> list[str]:
    """The flags of every bin column (``_BINS``) for the prediction ``row`` (p, NEW, OLD)."""
    return _edge_flags(f"{row}.latency_ms", EDGES_MS) + _edge_flags(f"{row}.score", SCORE_EDGES)


def bins() -> list[str]:
    """The bin columns: latency (``b0``..), then score (``s0``..)."""
    return list(_BINS)


def rollup_select() -> str:
    """The rollup rows of the stored predictions (with their labels), one per hour,
    model, version and route, to end with more ``AND`` conditions and ``GROUP BY 1, 2,
    3, 4``."""
    return (
        f"SELECT p.ts_us / {HOUR_US}, p.model, p.version, p.route, COUNT(*), "
        "COUNT(l.prediction_id), SUM(p.score), SUM(p.latency_ms), MAX(p.latency_ms), "
        f"MIN(p.ts_us), MAX(p.ts_us), {', '.join(f'SUM{f}' for f in _bin_flags('p'))} "
        "FROM audit_predictions p LEFT JOIN audit_labels l ON l.prediction_id = p.prediction_id "
        "WHERE 1 = 1"
    )


def insert_trigger() -> str:
    """The trigger that rolled up each inserted prediction (dropped by ``a0006``: the
    writer sums each commit's rows instead)."""
    key = "hour, model, version, route"
    new = _bin_flags("NEW")
    return (
        "CREATE TRIGGER audit_route_hours_insert AFTER INSERT ON audit_predictions BEGIN "
        f"INSERT INTO audit_route_hours ({key}, requests, labelled, score_sum, latency_sum, "
        f"latency_max, first_us, last_us, {', '.join(_BINS)}) VALUES (NEW.ts_us / {HOUR_US}, "
        "NEW.model, NEW.version, NEW.route, 1, 0, NEW.score, NEW.latency_ms, NEW.latency_ms, "
        f"NEW.ts_us, NEW.ts_us, {', '.join(new)}) ON CONFLICT ({key}) DO UPDATE SET "
        "requests = requests + 1, score_sum = score_sum + excluded.score_sum, "
        "latency_sum = latency_sum + excluded.latency_sum, "
        "latency_max = MAX(latency_max, excluded.latency_max), "
        "first_us = MIN(first_us, excluded.first_us), last_us = MAX(last_us, excluded.last_us), "
        f"{', '.join(f'{b} = {b} + excluded.{b}' for b in _BINS)}; END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    key = "hour, model, version, route"
    op.execute(
        "CREATE TABLE audit_route_hours (hour BIGINT NOT NULL, model TEXT NOT NULL, "
        "version TEXT NOT NULL, route TEXT NOT NULL, requests BIGINT NOT NULL, "
        "labelled BIGINT NOT NULL, score_sum DOUBLE PRECISION NOT NULL, "
        "latency_sum DOUBLE PRECISION NOT NULL, latency_max DOUBLE PRECISION NOT NULL, "
        "first_us BIGINT NOT NULL, last_us BIGINT NOT NULL, "
        f"{', '.join(f'{b} BIGINT NOT NULL' for b in _BINS)}, PRIMARY KEY ({key}))"
    )
    op.execute(
        f"INSERT INTO audit_route_hours ({key}, requests, labelled, score_sum, latency_sum, "
        f"latency_max, first_us, last_us, {', '.join(_BINS)}) {rollup_select()} "
        "GROUP BY 1, 2, 3, 4"
    )
    op.execute(insert_trigger())
    op.execute(
        "CREATE TRIGGER audit_route_hours_delete AFTER DELETE ON audit_predictions BEGIN "
        "UPDATE audit_route_hours SET requests = requests - 1, score_sum = score_sum - OLD.score, "
        "latency_sum = latency_sum - OLD.latency_ms, "
        f"{', '.join(f'{b} = {b} - {f}' for b, f in zip(_BINS, _bin_flags('OLD'), strict=True))} "
        f"WHERE hour = OLD.ts_us / {HOUR_US} AND model = OLD.model AND version = OLD.version "
        "AND route = OLD.route; END"
    )
    for event, row, change in (("INSERT", "NEW", "+"), ("DELETE", "OLD", "-")):
        op.execute(
            f"CREATE TRIGGER audit_route_hours_label_{event.lower()} AFTER {event} ON "
            f"audit_labels BEGIN UPDATE audit_route_hours SET labelled = labelled {change} 1 "
            f"WHERE ({key}) = (SELECT ts_us / {HOUR_US}, model, version, route "
            f"FROM audit_predictions WHERE prediction_id = {row}.prediction_id); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "delete", "label_insert", "label_delete"):
        op.execute(f"DROP TRIGGER audit_route_hours_{trigger}")
    op.execute("DROP TABLE audit_route_hours")
