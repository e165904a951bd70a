"""compare_arms reads any audit log backend alike: the same records on SQLite and on
PostgreSQL give the same comparison and the same verdict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from driftloop.audit import AuditLog, AuditRecord, Label, PostgresAuditLog, SqliteAuditLog
from driftloop.audit._postgres import libpq_dsn
from driftloop.monitoring import ArmLimits, compare_arms, verdict

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditLog]:
    if request.param == "sqlite":
        opened: AuditLog = SqliteAuditLog(tmp_path / "audit.db")
        yield opened
        opened.close()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"arms_test_{uuid.uuid4().hex[:12]}"
    opened = PostgresAuditLog(url, schema=schema)
    yield opened
    opened.close()
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def canary(rng: np.random.Generator) -> tuple[list[AuditRecord], list[Label]]:
    """A 50/50 canary whose challenger is right less often and fails 5% of its requests
    (answered by the champion, route v1:champion)."""
    records, labels = [], []
    for i in range(800):
        challenger = i % 2 == 1
        failed = challenger and rng.random() < 0.05
        truth = float(rng.random() < 0.5)
        right = rng.random() < (0.6 if challenger else 0.85)
        score = truth if right else 1.0 - truth
        records.append(
            AuditRecord(
                prediction_id=f"p{i}",
                ts=T0 + timedelta(seconds=i),
                model="m",
                version="1" if failed or not challenger else "2",
                route="v1:champion" if failed else "v1",
                score=0.2 + 0.6 * score,
                decision="",
                latency_ms=float(rng.gamma(2.0, 2.0)),
                features={"city": rng.choice(["x", "y"]), "flag": bool(i % 3), "n": None},
                served_at=T0 + timedelta(seconds=i),
            )
        )
        labels.append(Label(f"p{i}", truth))
    return records, labels


def test_the_same_records_give_the_same_comparison_on_every_backend(
    log: AuditLog, tmp_path: Path
) -> None:
    records, labels = canary(np.random.default_rng(6))
    log.write(records)
    log.add_labels(labels)
    reference = SqliteAuditLog(tmp_path / "reference.db")
    try:
        reference.write(records)
        reference.add_labels(labels)
        limits = ArmLimits(min_sample=100, min_labelled=100)
        got = compare_arms(log, "m", 1, 2, T0, T0 + timedelta(hours=1), limits=limits)
        expected = compare_arms(reference, "m", 1, 2, T0, T0 + timedelta(hours=1), limits=limits)
    finally:
        reference.close()
    assert _rounded(got.to_dict()) == _rounded(expected.to_dict())
    assert 10 <= got.challenger.errors <= 40
    judged = verdict(got)
    assert (judged.action, judged.rule) == ("rollback", "error-rate")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
