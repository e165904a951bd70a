"""The audit log's tables are made and upgraded by its Alembic branch (``migrations/``).

Revisions: ``a0001`` the tables as the audit log created them before migrations (a
database made then is stamped with it at open, not recreated); ``a0002`` adds
``served_us``, ``missing`` and ``outputs`` to predictions (``ts_us`` is the event time);
``a0003`` adds ``audit_relabels`` (every label change, who and when) and
``audit_idempotency`` (the answers kept per ``Idempotency-Key``); ``a0004_ui_route_hours``
adds ``audit_route_hours`` on SQLite (hourly rollups kept by triggers, for summaries);
``a0005_tenants`` adds each prediction's ``tenant`` (``default`` for rows before it);
``a0006_route_hours_writer`` has the SQLite writer keep the rollups (no insert trigger);
``a0007_entities_recent`` adds ``audit_entities_recent_0`` .. ``_15``, where entity rows
are staged, unindexed, until merged into ``audit_entities`` (:mod:`driftloop.audit._sql`).
The applied revision is kept in ``alembic_version_audit``, beside the tables (in the
PostgreSQL schema), so monitoring's tables in the same database upgrade on their own.
"""

from __future__ import annotations

from pathlib import Path

from driftloop.core.migrations import Branch, upgrade_schema

__all__ = ["VERSION_TABLE", "branch", "upgrade"]

VERSION_TABLE = "alembic_version_audit"
MIGRATIONS = Path(__file__).parent / "migrations"


def branch(schema: str | None = None) -> Branch:
    """The audit branch for tables in ``schema`` (PostgreSQL) or unqualified (SQLite)."""
    return Branch(
        part="audit",
        scripts=MIGRATIONS,
        version_table=VERSION_TABLE,
        lock_key=0x64726C61,  # "drla": serialises concurrent migrations on PostgreSQL
        first="a0001",
        legacy_tables=("audit_predictions", "audit_entities", "audit_labels"),
        schema=schema,
        options={"schema": schema} if schema else {},
    )


def upgrade(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Create or upgrade the audit tables of the database at ``url`` (a SQLAlchemy URL),
    through a short-lived engine; the log itself writes on its own driver connection."""
    upgrade_schema(url, branch(schema), revision=revision)
