"""Relabels are audited, and idempotency keys kept, in the audit store.

``audit_relabels`` keeps every change of a prediction's label: the old and new label, who
asked (the caller's actor name) and when (``ts_us``); rows are only ever added.
``audit_idempotency`` keeps, per endpoint (``scope``) and ``Idempotency-Key``, the SHA-256
of the request body and the answer sent (``status`` 0 while the request is in progress),
until ``expires_us``. Both are new tables: no existing row is touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.migrations import option

revision = "a0003"
down_revision = "a0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = option("schema")
    op.create_table(
        "audit_relabels",
        sa.Column("prediction_id", sa.Text(), nullable=False),
        sa.Column("old_label", sa.Float(precision=53), nullable=False),
        sa.Column("new_label", sa.Float(precision=53), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        schema=schema,
    )
    op.create_index(
        "audit_relabels_prediction", "audit_relabels", ["prediction_id", "ts_us"], schema=schema
    )
    op.create_table(
        "audit_idempotency",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="audit_idempotency_pk"),
        schema=schema,
    )
    op.create_index("audit_idempotency_expires", "audit_idempotency", ["expires_us"], schema=schema)


def downgrade() -> None:
    schema = option("schema")
    op.drop_table("audit_idempotency", schema=schema)
    op.drop_table("audit_relabels", schema=schema)
