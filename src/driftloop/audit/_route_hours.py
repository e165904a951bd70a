"""The SQLite audit log's hourly rollups (``audit_route_hours``), kept by its writer.

Revision ``a0004_ui_route_hours`` kept them with a trigger that upserted one rollup row
for every prediction inserted: about a fifth of the writer's CPU per audited row. Since
``a0006_route_hours_writer`` the writer upserts one row per hour, model, version and
route of each commit instead, summed in Python, in the commit's own transaction. The
deletion and label triggers of ``a0004`` stay (compaction and labels are rare).

A prediction id already stored inserts nothing (``ON CONFLICT DO NOTHING``); when a
commit inserted fewer rows than it held, the hours it touched are summed again from the
stored rows, so the rollups stay exact either way.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from driftloop.audit.migrations.versions.a0004_ui_route_hours import (
    EDGES_MS,
    HOUR_US,
    SCORE_EDGES,
    bins,
    rollup_select,
)

__all__ = ["add_rows", "hour_of"]

_BINS = bins()
_KEY = "hour, model, version, route"
_COLUMNS = (
    f"{_KEY}, requests, labelled, score_sum, latency_sum, latency_max, first_us, last_us, "
    + ", ".join(_BINS)
)
_UPSERT = (
    f"INSERT INTO audit_route_hours ({_COLUMNS}) VALUES ({', '.join('?' * (11 + len(_BINS)))}) "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET requests = requests + excluded.requests, "
    "score_sum = score_sum + excluded.score_sum, "
    "latency_sum = latency_sum + excluded.latency_sum, "
    "latency_max = MAX(latency_max, excluded.latency_max), "
    "first_us = MIN(first_us, excluded.first_us), last_us = MAX(last_us, excluded.last_us), "
    + ", ".join(f"{b} = {b} + excluded.{b}" for b in _BINS)
)
_N_LATENCY = len(EDGES_MS) + 1


def hour_of(ts_us: int) -> int:
    """The rollup hour of a prediction: ``ts_us / HOUR_US`` as SQLite divides integers
    (toward zero, also before 1970)."""
    hour = abs(ts_us) // HOUR_US
    return hour if ts_us >= 0 else -hour


def add_rows(cur: Any, rows: Sequence[tuple[Any, ...]], inserted: int) -> None:
    """Add predictions just inserted (raw rows: id, ts_us, model, version, route, score,
    decision, latency_ms, ...) to their hours; ``inserted`` is how many of ``rows`` the
    database took (fewer: some ids were stored already)."""
    if not rows:
        return
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        ts_us, model, version, route, score, latency = (
            row[1], row[2], row[3], row[4], row[5], row[7]
        )  # fmt: skip
        key = (hour_of(ts_us), model, version, route)
        acc = groups.get(key)
        if acc is None:  # requests, score and latency sums, slowest, first, last, bins
            acc = groups[key] = [0, 0.0, 0.0, latency, ts_us, ts_us] + [0] * len(_BINS)
        acc[0] += 1
        acc[1] += score
        acc[2] += latency
        if latency > acc[3]:
            acc[3] = latency
        if ts_us < acc[4]:
            acc[4] = ts_us
        if ts_us > acc[5]:
            acc[5] = ts_us
        acc[6 + bisect_right(EDGES_MS, latency)] += 1
        acc[6 + _N_LATENCY + bisect_right(SCORE_EDGES, score)] += 1
    if inserted != len(rows):  # some were stored already: sum those hours from the rows
        _resum(cur, list(groups))
        return
    cur.executemany(_UPSERT, [(*key, acc[0], 0, *acc[1:]) for key, acc in groups.items()])


def _resum(cur: Any, keys: list[tuple[Any, ...]]) -> None:
    """Set the rollups of ``keys`` (hour, model, version, route) from the stored rows."""
    for hour, model, version, route in keys:
        cur.execute(
            f"DELETE FROM audit_route_hours WHERE ({_KEY}) = (?, ?, ?, ?)",
            (hour, model, version, route),
        )
        # the ts_us index narrows to two hours; the division picks SQLite's hour
        cur.execute(
            f"INSERT INTO audit_route_hours ({_COLUMNS}) {rollup_select()} "
            f"AND p.ts_us >= ? AND p.ts_us <= ? AND p.ts_us / {HOUR_US} = ? "
            "AND p.model = ? AND p.version = ? AND p.route = ? GROUP BY 1, 2, 3, 4",
            ((hour - 1) * HOUR_US, (hour + 1) * HOUR_US, hour, model, version, route),
        )
