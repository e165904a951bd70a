"""Initial registry schema: models, versions, alias history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driftloop_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "driftloop_model_versions",
        sa.Column(
            "model_name", sa.String(200), sa.ForeignKey("driftloop_models.name"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("flavor", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("gate_report", sa.JSON, nullable=True),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("profile", sa.Text, nullable=True),
        sa.Column("card", sa.Text, nullable=False),
    )
    op.create_table(
        "driftloop_alias_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "model_name", sa.String(200), sa.ForeignKey("driftloop_models.name"), nullable=False
        ),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.UniqueConstraint("model_name", "alias", "id", name="uq_alias_event"),
    )
    op.create_index(
        "ix_alias_events_lookup", "driftloop_alias_events", ["model_name", "alias", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_alias_events_lookup", table_name="driftloop_alias_events")
    op.drop_table("driftloop_alias_events")
    op.drop_table("driftloop_model_versions")
    op.drop_table("driftloop_models")
