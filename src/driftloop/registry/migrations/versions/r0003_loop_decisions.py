"""The loop controller's decision log and its per-model leases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driftloop_loop_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("numbers", sa.JSON, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
    )
    op.create_index("ix_loop_decisions_model", "driftloop_loop_decisions", ["model", "id"])
    op.create_table(
        "driftloop_loop_leases",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("driftloop_loop_leases")
    op.drop_index("ix_loop_decisions_model", table_name="driftloop_loop_decisions")
    op.drop_table("driftloop_loop_decisions")
