"""The migration runner refuses databases it cannot vouch for, and every branch builds
exactly the tables its part's code uses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from driftloop.audit import SqliteAuditLog
from driftloop.audit._schema import VERSION_TABLE, branch
from driftloop.core.errors import ConflictError
from driftloop.core.migrations import Branch, upgrade_schema
from driftloop.features import DefinitionRegistry
from driftloop.features._registry import BRANCH as FEATURES
from driftloop.monitoring import MonitoringStore
from driftloop.monitoring._schema import branch as monitoring_branch


def test_a_database_upgraded_by_a_newer_driftloop_is_refused_not_touched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    SqliteAuditLog(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'a0099'")
    newest = "a0007_entities_recent"
    with pytest.raises(ConflictError, match=rf"revision 'a0099'.*newest is '{newest}'"):
        SqliteAuditLog(path)


def test_a_database_with_only_some_of_a_parts_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE audit_predictions (prediction_id TEXT PRIMARY KEY)")
    with pytest.raises(ConflictError, match="audit_predictions but not audit_entities"):
        SqliteAuditLog(path)


def test_an_up_to_date_database_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade_schema(url, branch())
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a write lock held elsewhere does not block the check
        conn.exec_driver_sql("INSERT INTO audit_labels VALUES ('p', 1.0, 0)")
        upgrade_schema(url, branch())
    engine.dispose()


def _diff(url: str, part: Branch) -> list[object]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": part.version_table})
        assert part.metadata is not None
        diff = compare_metadata(context, part.metadata)
    engine.dispose()
    return [d for d in diff if part.version_table not in str(d)]


def test_monitoring_migrations_build_exactly_the_tables_the_store_uses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = MonitoringStore(url, table_prefix="mon_")
    store.dispose()
    assert _diff(url, monitoring_branch("mon_", store.windows.metadata)) == []


def test_feature_migrations_build_exactly_the_tables_the_registry_uses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    DefinitionRegistry(url).close()
    assert _diff(url, FEATURES) == []


def test_each_part_keeps_its_own_version_table() -> None:
    tables = {
        branch().version_table,
        monitoring_branch().version_table,
        FEATURES.version_table,
    }
    assert tables == {
        "alembic_version_audit",
        "alembic_version_monitoring",
        "alembic_version_features",
    }
