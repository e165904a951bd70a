from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from driftloop.registry import Registry
from driftloop.registry._schema import VERSION_TABLE, metadata


def test_migrations_build_exactly_the_schema_the_code_uses(tmp_path: Path) -> None:
    registry = Registry.from_url(f"sqlite:///{tmp_path}/r.db", str(tmp_path / "a"))
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = [d for d in compare_metadata(context, metadata) if VERSION_TABLE not in str(d)]
    registry.close()
    assert diff == []


def test_the_registry_keeps_its_tables_apart_from_other_parts(tmp_path: Path) -> None:
    assert all(name.startswith("driftloop_") for name in metadata.tables)
    assert VERSION_TABLE == "driftloop_registry_version"
