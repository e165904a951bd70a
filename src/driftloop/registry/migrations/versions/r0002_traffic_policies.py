"""Traffic policies (A/B split, canary, shadow) changed at run time, with their history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driftloop_traffic_policies",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("policy", sa.JSON, nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_traffic_policies_revision", "driftloop_traffic_policies", ["revision"], unique=True
    )
    op.create_table(
        "driftloop_traffic_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("policy", sa.JSON, nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_traffic_events_model", "driftloop_traffic_events", ["model", "revision"])


def downgrade() -> None:
    op.drop_index("ix_traffic_events_model", table_name="driftloop_traffic_events")
    op.drop_table("driftloop_traffic_events")
    op.drop_index("ix_traffic_policies_revision", table_name="driftloop_traffic_policies")
    op.drop_table("driftloop_traffic_policies")
