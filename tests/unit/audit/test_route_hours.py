"""The SQLite audit log's hourly rollups (revision ``a0004_ui_route_hours``) agree with
its rows: rolled up at the upgrade from what was there, then kept as rows are written
(by the writer since ``a0006``), labelled and compacted away (by triggers)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.audit import AuditRecord, Label, SqliteAuditLog, route_summary
from driftloop.audit._sql import ENTITY_PARTS

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def records(first: int, n: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            prediction_id=f"p{i}",
            ts=T0 + timedelta(minutes=17 * i),
            model="churn",
            version=str(1 + i % 2),
            route="v1",
            score=i / 100,
            decision="stay",
            latency_ms=float(i % 7),
            features={"plan": "pro"},
        )
        for i in range(first, first + n)
    ]


def summary(log: SqliteAuditLog) -> dict[str, tuple[int, int, float]]:
    found = route_summary(log, T0 - timedelta(days=1), T0 + timedelta(days=2))
    return {a.version: (a.requests, a.labelled, round(a.mean_score, 9)) for a in found}


def rolled_up(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT SUM(requests) FROM audit_route_hours").fetchone()[0])


def test_rows_written_before_the_upgrade_are_rolled_up_by_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = SqliteAuditLog(path)
    log.write(records(0, 40))
    log.add_labels([Label("p1", 1.0), Label("p2", 0.0)])
    log.close()
    with sqlite3.connect(path) as conn:  # back to revision a0003, rows kept
        for part in range(ENTITY_PARTS):  # a0007 (merged at close: empty)
            conn.execute(f"DROP TABLE audit_entities_recent_{part}")
        conn.execute("DROP INDEX audit_predictions_tenant")  # a0005_tenants
        conn.execute("ALTER TABLE audit_predictions DROP COLUMN tenant")
        for trigger in ("insert", "delete", "label_insert", "label_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS audit_route_hours_{trigger}")  # a0006
        conn.execute("DROP TABLE audit_route_hours")
        conn.execute("UPDATE alembic_version_audit SET version_num = 'a0003'")
    log = SqliteAuditLog(path)  # upgrades: the rollups start from the rows
    try:
        assert rolled_up(path) == 40
        assert summary(log) == {"1": (20, 1, 0.19), "2": (20, 1, 0.2)}
    finally:
        log.close()


def test_labels_and_compaction_keep_the_rollups_equal_to_the_rows(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "audit.db", archive=tmp_path / "archive")
    try:
        log.write(records(0, 40))
        log.write(records(30, 20))  # ten duplicates: nothing counted twice
        log.add_labels([Label("p1", 1.0), Label("p2", 0.0), Label("p45", 1.0)])
        log.add_labels([Label("p1", 0.0)])  # a label changed: still one labelled row
        assert summary(log) == {"1": (25, 1, 0.24), "2": (25, 2, 0.25)}
        log.compact(T0 + timedelta(minutes=17 * 10))  # p0..p9 leave the database
        assert summary(log) == {"1": (20, 0, 0.29), "2": (20, 1, 0.3)}
        assert rolled_up(tmp_path / "audit.db") == 40
    finally:
        log.close()


def test_the_rollups_bins_are_the_summarys() -> None:
    from driftloop.audit import LATENCY_EDGES_MS, SCORE_EDGES
    from driftloop.audit.migrations.versions import a0004_ui_route_hours as revision

    assert (revision.EDGES_MS, revision.SCORE_EDGES) == (LATENCY_EDGES_MS, SCORE_EDGES)


def resummed(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The rollup table as kept, and as summed again from the stored rows now."""
    from driftloop.audit.migrations.versions.a0004_ui_route_hours import rollup_select

    with sqlite3.connect(path) as conn:
        kept = conn.execute("SELECT * FROM audit_route_hours ORDER BY 1, 2, 3, 4").fetchall()
        fresh = conn.execute(f"{rollup_select()} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")
        return kept, fresh.fetchall()


def test_the_writer_keeps_the_rollups_of_batches_equal_to_a_fresh_sum(tmp_path: Path) -> None:
    """Batches of two routes over several hours, before and after 1970 (SQLite divides
    toward zero), with latencies and scores on the bins' edges and a commit whose ids
    were partly stored: the kept rollups are what summing the rows again gives."""
    from driftloop.audit import AuditBatch

    path = tmp_path / "audit.db"
    log = SqliteAuditLog(path)
    try:
        for k, base in enumerate((T0, datetime(1969, 12, 31, 23, 30, tzinfo=UTC), T0)):
            ids = [f"b{k % 2}-{i}" for i in range(30)]  # the third commit repeats the first
            log.write_batches(
                [
                    AuditBatch(
                        base + timedelta(minutes=7 * k),
                        "churn",
                        "3",
                        route,
                        latency,
                        ["x"],
                        [[float(i)] for i in range(30)],
                        [f"{route}-{pid}" for pid in ids],
                        [(i % 11) / 10 for i in range(30)],
                        ["-"] * 30,
                        [{}] * 30,
                        [{}] * 30,
                        event_ts=[base + timedelta(minutes=3 * i) for i in range(30)],
                    )
                    for route, latency in (("v1", 5.0), ("v2", 20.0))
                ]
            )
        kept, fresh = resummed(path)
        assert kept == fresh
        assert sum(int(row[4]) for row in kept) == 120  # 4 x 30 distinct ids
        assert any(int(row[0]) == 0 for row in kept)  # 1969's last half hour is hour 0
    finally:
        log.close()
