"""Bounded storage: a retention pass keeps the database under its limits and loses no
prediction, on both audit backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftloop.audit import (
    AuditRecord,
    Label,
    _retention,
    enforce_retention,
)
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.config import RetentionConfig

NOW = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
DAYS = 10
PER_DAY = 300
Factory = Callable[[], SqlAuditLog]


def filled(factory: Factory) -> SqlAuditLog:
    """DAYS days of PER_DAY predictions ending at NOW, mixed features, every 7th labelled."""
    log = factory()
    records = []
    for i in range(DAYS * PER_DAY):
        ts = NOW - timedelta(days=DAYS) + timedelta(seconds=i * 86_400 / PER_DAY)
        records.append(
            AuditRecord(
                prediction_id=f"r{i:05d}",
                ts=ts,
                model="churn",
                version="2",
                route="v1",
                score=(i % 97) / 97,
                decision="",
                latency_ms=1.0,
                features={"plan": ["basic", "pro", None][i % 3], "active": i % 2 == 0},
                entity_keys={"account": f"a{i % 50}"},
            )
        )
    log.write(records)
    assert (
        log.add_labels([Label(f"r{i:05d}", float(i % 2)) for i in range(0, len(records), 7)]) == []
    )
    return log


def everything(log: SqlAuditLog) -> list[tuple[str, object]]:
    frame = log.window(NOW - timedelta(days=DAYS + 1), NOW + timedelta(days=1))
    return sorted(zip(frame["prediction_id"], frame["label"].fillna(-1.0), strict=True))


def test_a_row_limit_compacts_the_oldest_in_steps_and_loses_nothing(
    make_log: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_retention, "STEP_ROWS", 400)  # several steps of bounded memory
    log = filled(make_log)
    before = everything(log)
    report = enforce_retention(log, RetentionConfig(hot_max_rows=1_000), now=NOW)
    assert report.hot_rows == log.hot_rows() == 1_000  # distinct times: exactly the limit
    assert report.compacted == DAYS * PER_DAY - report.hot_rows
    assert report.files >= DAYS - 4  # day partitions, several steps
    assert everything(log) == before  # windows read Parquet and database as one
    oldest = log.get("r00000")
    assert (oldest.features, oldest.label) == ({"plan": "basic", "active": True}, 0.0)
    again = enforce_retention(log, RetentionConfig(hot_max_rows=1_000), now=NOW)
    assert again.compacted == 0
    assert everything(log) == before


def test_an_age_limit_leaves_no_older_row_in_the_database(make_log: Factory) -> None:
    log = filled(make_log)
    before = everything(log)
    report = enforce_retention(log, RetentionConfig(hot_days=3), now=NOW)
    assert report.hot_rows == 3 * PER_DAY
    hot = log.nth_oldest(0)
    assert hot is not None
    assert hot >= NOW - timedelta(days=3)
    assert everything(log) == before


def test_archived_days_past_their_age_are_deleted(make_log: Factory) -> None:
    log = filled(make_log)
    policy = RetentionConfig(hot_days=2, archive_days=5)
    report = enforce_retention(log, policy, now=NOW)
    assert len(report.pruned) >= 4
    left = everything(log)
    first = log.window(NOW - timedelta(days=DAYS + 1), NOW + timedelta(days=1))["ts"].min()
    assert first >= NOW - timedelta(days=6)  # whole days: pruned before the day 5 days ago
    assert len(left) < DAYS * PER_DAY
    assert log.hot_rows() == 2 * PER_DAY


def test_a_pass_cut_off_midway_and_run_again_loses_and_duplicates_nothing(
    make_log: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_retention, "STEP_ROWS", 500)
    log = filled(make_log)
    before = everything(log)
    real = SqlAuditLog.compact
    steps = [0]

    def dies_on_the_third(self: SqlAuditLog, before: datetime) -> list[Path]:
        steps[0] += 1
        if steps[0] == 3:  # Parquet written, rows not yet deleted: the worst place
            assert self.archive is not None
            self.archive.append(self._select("p.ts_us < ?", [int(before.timestamp() * 1e6)]))
            raise KeyboardInterrupt
        return real(self, before)

    monkeypatch.setattr(SqlAuditLog, "compact", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        enforce_retention(log, RetentionConfig(hot_days=1), now=NOW)
    monkeypatch.setattr(SqlAuditLog, "compact", real)
    enforce_retention(log, RetentionConfig(hot_days=1), now=NOW)
    assert everything(log) == before
    assert log.hot_rows() == PER_DAY


def test_archive_days_shorter_than_hot_days_is_refused() -> None:
    with pytest.raises(ValueError, match="archive_days"):
        RetentionConfig(hot_days=30, archive_days=7)
