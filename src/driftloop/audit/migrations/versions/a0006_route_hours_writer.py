"""The SQLite writer keeps the hourly rollups, not a trigger per inserted row.

``a0004``'s insert trigger upserted ``audit_route_hours`` once for every prediction:
about a fifth of the audit writer's CPU per row (``benchmarks/audit_write.py``). The
writer now sums each commit's rows per hour, model, version and route and upserts those
few rows in the same transaction (:mod:`driftloop.audit._route_hours`); the deletion and
label triggers stay. PostgreSQL has no rollups: nothing changes there.
"""

from __future__ import annotations

from alembic import op

from driftloop.audit.migrations.versions.a0004_ui_route_hours import insert_trigger

revision = "a0006_route_hours_writer"
down_revision = "a0005_tenants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER audit_route_hours_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(insert_trigger())
