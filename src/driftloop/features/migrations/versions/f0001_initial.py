"""Feature definitions and statistics as created before migrations.

The definitions are those ``DefinitionRegistry`` created with ``create_all`` until then,
with the one-row ``feature_schema`` table (layout version 1) it kept as its own version
marker, so a database made that way is this revision exactly (and is stamped with it,
not recreated).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f0001"
down_revision = None
branch_labels = ("features",)
depends_on = None


def upgrade() -> None:
    schema = op.create_table("feature_schema", sa.Column("version", sa.Integer, nullable=False))
    op.bulk_insert(schema, [{"version": 1}])
    op.create_table(
        "feature_definitions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("applied_at", sa.DateTime, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "feature_stats",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("view", sa.String(200), nullable=False),
        sa.Column("view_version", sa.String(32), nullable=False),
        sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("newest", sa.DateTime, nullable=True),
        sa.Column("freshness_s", sa.Float, nullable=True),
        sa.Column("columns", sa.Text, nullable=False),
    )
    op.create_index("ix_feature_stats_view", "feature_stats", ["view"])


def downgrade() -> None:
    op.drop_index("ix_feature_stats_view", table_name="feature_stats")
    op.drop_table("feature_stats")
    op.drop_table("feature_definitions")
    op.drop_table("feature_schema")
