"""Several server workers share one SQLite audit file: a commit that finds the write lock
taken waits for it (with its own short retries) instead of failing or losing rows."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftloop.audit import AuditRecord, SqliteAuditLog


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        prediction_id=f"p{i}",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        model="fraud",
        version="1",
        route="v1",
        score=0.5,
        decision="review",
        latency_ms=1.0,
        features={"amount": float(i)},
        entity_keys={},
        feature_ts={},
    )


def test_a_write_waits_for_another_processes_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = SqliteAuditLog(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another worker mid-commit holds the write lock
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    try:
        log.write([_record(i) for i in range(3)])  # blocks until the lock is free
    finally:
        release.join()
        other.close()
    assert [log.get(f"p{i}").features for i in range(3)] == [{"amount": float(i)} for i in range(3)]
    busy = log._conn.execute("PRAGMA busy_timeout").fetchone()[0]
    assert busy == 30_000  # readers keep SQLite's own wait
    log.close()


def test_a_write_still_fails_on_errors_other_than_a_taken_lock(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "audit.db")
    log._conn.execute("DROP TABLE audit_predictions")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        log.write([_record(0)])
    log.close()
