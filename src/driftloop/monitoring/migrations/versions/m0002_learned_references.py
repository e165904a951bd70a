"""Learned references and the band each result was judged against.

``<prefix>references`` keeps, per model version and route, the reference learned from its
reference period (its profile, alert bands and score calibration, as JSON) with the
period's bounds, so the monitor learns it once. ``<prefix>results`` gains ``lower`` and
``upper``: the limits of the learned band a value was judged against (NULL with fixed
thresholds, and for rows written before), so a chart can draw the band.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "m0002"
down_revision = "m0001"
branch_labels = None
depends_on = None


def _prefix() -> str:
    prefix = option("prefix")
    return "monitoring_" if prefix is None else prefix


def upgrade() -> None:
    prefix = _prefix()
    op.create_table(
        f"{prefix}references",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.UniqueConstraint("model", "version", "route"),
    )
    for name in ("lower", "upper"):
        op.add_column(f"{prefix}results", sa.Column(name, sa.Float, nullable=True))


def downgrade() -> None:
    prefix = _prefix()
    for name in ("upper", "lower"):
        op.drop_column(f"{prefix}results", name)
    op.drop_table(f"{prefix}references")
