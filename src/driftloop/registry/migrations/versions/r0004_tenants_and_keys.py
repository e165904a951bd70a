"""Tenants, their API keys (hashed) and the key events; every model gets a tenant."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("driftloop_models") as batch:
        batch.add_column(
            sa.Column("tenant", sa.String(100), nullable=False, server_default="default")
        )
    op.create_table(
        "driftloop_tenants",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests_per_day", sa.BigInteger, nullable=True),
        sa.Column("max_models", sa.Integer, nullable=True),
    )
    op.create_table(
        "driftloop_api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant", sa.String(100), sa.ForeignKey("driftloop_tenants.name"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_per_s", sa.Float, nullable=True),
        sa.Column("burst", sa.Integer, nullable=True),
    )
    op.create_index("ix_api_keys_tenant", "driftloop_api_keys", ["tenant"])
    op.create_table(
        "driftloop_key_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("driftloop_key_events")
    op.drop_index("ix_api_keys_tenant", table_name="driftloop_api_keys")
    op.drop_table("driftloop_api_keys")
    op.drop_table("driftloop_tenants")
    with op.batch_alter_table("driftloop_models") as batch:
        batch.drop_column("tenant")
