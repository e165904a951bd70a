"""The audit-log factory shared by the contract tests of every audit backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from driftloop.audit import PostgresAuditLog, SqliteAuditLog
from driftloop.audit._postgres import libpq_dsn
from driftloop.audit._sql import SqlAuditLog

AuditFactory = Callable[[], SqlAuditLog]


@pytest.fixture(params=["sqlite", "postgres"])
def make_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditFactory]:
    """Opens the same log again on each call (to prove what survives a reopen, another
    worker or a restarted server), on SQLite and on PostgreSQL (a schema of its own,
    dropped after; skipped when unreachable, per tests/services.py)."""
    opened: list[SqlAuditLog] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"

    def factory() -> SqlAuditLog:
        log: SqlAuditLog
        if request.param == "sqlite":
            log = SqliteAuditLog(tmp_path / "audit.db", archive=tmp_path / "archive")
        else:
            log = PostgresAuditLog(url, schema=schema, archive=tmp_path / "archive")
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()
    if request.param == "postgres":
        with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
