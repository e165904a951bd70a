"""Predictions keep their serve time, missing features and task outputs.

``ts_us`` becomes the event time of the prediction (the serve time when the request gave
none, as before); ``served_us`` is when the server answered, ``missing`` the JSON list of
features scored as null, ``outputs`` the JSON object of task outputs beyond the score.
All three are nullable: rows written before keep NULL (readers fall back to ``ts_us``),
and adding them rewrites no row on SQLite or PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("served_us", sa.BigInteger()),
    ("missing", sa.Text()),
    ("outputs", sa.Text()),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column(
            "audit_predictions", sa.Column(name, type_, nullable=True), schema=option("schema")
        )


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("audit_predictions", name, schema=option("schema"))
