"""Every feature definition belongs to a tenant.

``feature_definitions`` gains ``tenant``; definitions applied before belong to the
implicit tenant ``default``, which is what they were. A definition's name stays unique
over every tenant (as a model's is), so a name tells one view.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f0002_tenants"
down_revision = "f0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feature_definitions") as batch:
        batch.add_column(
            sa.Column("tenant", sa.String(100), nullable=False, server_default="default")
        )
    op.create_index("ix_feature_definitions_tenant", "feature_definitions", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_feature_definitions_tenant", table_name="feature_definitions")
    with op.batch_alter_table("feature_definitions") as batch:
        batch.drop_column("tenant")
