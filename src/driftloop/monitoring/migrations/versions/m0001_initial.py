"""Monitoring tables as created before migrations: windows, results, incidents.

The definitions are those ``MonitoringStore`` created with ``create_all`` until then
(table names start with the store's prefix, ``monitoring_`` by default), so a database
made that way is this revision exactly (and is stamped with it, not recreated).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "m0001"
down_revision = None
branch_labels = ("monitoring",)
depends_on = None


def _prefix() -> str:
    prefix = option("prefix")
    return "monitoring_" if prefix is None else prefix


def _key() -> list[sa.Column[Any]]:
    return [
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
    ]


def upgrade() -> None:
    prefix = _prefix()
    op.create_table(
        f"{prefix}windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_key(),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labelled", sa.Integer, nullable=False),
        sa.Column("verdict", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("histograms", sa.Text, nullable=False),
        sa.UniqueConstraint("model", "version", "route", "window_start", "window_end"),
    )
    op.create_table(
        f"{prefix}results",
        sa.Column("window_id", sa.Integer, nullable=False),
        *_key(),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("statistic", sa.String(40), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False),
    )
    op.create_index(f"ix_{prefix}results_window_id", f"{prefix}results", ["window_id"])
    op.create_index(
        f"{prefix}results_series",
        f"{prefix}results",
        ["model", "feature", "statistic", "window_end"],
    )
    op.create_table(
        f"{prefix}incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_key(),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    prefix = _prefix()
    op.drop_table(f"{prefix}incidents")
    op.drop_index(f"{prefix}results_series", table_name=f"{prefix}results")
    op.drop_index(f"ix_{prefix}results_window_id", table_name=f"{prefix}results")
    op.drop_table(f"{prefix}results")
    op.drop_table(f"{prefix}windows")
