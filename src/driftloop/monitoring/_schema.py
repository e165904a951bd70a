"""Monitoring's tables are made and upgraded by its Alembic branch (``migrations/``).

Revision ``m0001`` is the tables as ``MonitoringStore`` created them before migrations (a
database made then is stamped with it, not recreated). The applied revision is kept in
``alembic_version_monitoring`` (``alembic_version_<prefix>`` for another table prefix),
apart from the audit log's, although both live in the audit database.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from driftloop.core.migrations import Branch

__all__ = ["branch"]

MIGRATIONS = Path(__file__).parent / "migrations"


def branch(prefix: str = "monitoring_", metadata: sa.MetaData | None = None) -> Branch:
    """The monitoring branch for tables named ``<prefix>windows``, ..."""
    return Branch(
        part="monitoring",
        scripts=MIGRATIONS,
        version_table=f"alembic_version_{prefix.rstrip('_') or 'monitoring'}",
        lock_key=0x64726C6D,  # "drlm": serialises concurrent migrations on PostgreSQL
        first="m0001",
        legacy_tables=(f"{prefix}windows", f"{prefix}results", f"{prefix}incidents"),
        options={"prefix": prefix},
        metadata=metadata,
    )
