"""Every prediction belongs to a tenant.

``audit_predictions`` gains ``tenant`` (the tenant of the model that answered, as the
server knows it); rows written before belong to the implicit tenant ``default``, which is
what they were. An index on ``(tenant, ts_us)`` lets a tenant's rows be counted (its
audit storage quota) and read without a scan. The hourly rollups of ``a0004`` and their
triggers name their columns, so an added column leaves them as they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "a0005_tenants"
down_revision = "a0004_ui_route_hours"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = option("schema")
    op.add_column(
        "audit_predictions",
        sa.Column("tenant", sa.Text(), nullable=False, server_default="default"),
        schema=schema,
    )
    op.create_index(
        "audit_predictions_tenant", "audit_predictions", ["tenant", "ts_us"], schema=schema
    )


def downgrade() -> None:
    schema = option("schema")
    op.drop_index("audit_predictions_tenant", table_name="audit_predictions", schema=schema)
    with op.batch_alter_table("audit_predictions", schema=schema) as batch:
        batch.drop_column("tenant")
