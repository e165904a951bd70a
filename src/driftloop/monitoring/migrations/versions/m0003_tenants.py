"""Monitoring results belong to a tenant.

``<prefix>windows`` and ``<prefix>results`` gain ``tenant`` (the tenant of the monitored
model's audit records); rows written before belong to the implicit tenant ``default``,
which is what they were. (Incidents follow a model's windows: they are read by model.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "m0003_tenants"
down_revision = "m0002"
branch_labels = None
depends_on = None

_TABLES = ("windows", "results")


def _prefix() -> str:
    prefix = option("prefix")
    return "monitoring_" if prefix is None else prefix


def upgrade() -> None:
    prefix = _prefix()
    for table in _TABLES:
        with op.batch_alter_table(f"{prefix}{table}") as batch:
            batch.add_column(
                sa.Column("tenant", sa.String(100), nullable=False, server_default="default")
            )


def downgrade() -> None:
    prefix = _prefix()
    for table in _TABLES:
        with op.batch_alter_table(f"{prefix}{table}") as batch:
            batch.drop_column("tenant")
