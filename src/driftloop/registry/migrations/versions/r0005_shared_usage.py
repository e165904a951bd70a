"""Per-tenant usage counted in the shared database, and an audit storage quota.

``driftloop_usage`` holds, per tenant and UTC day, the requests granted so far by every
server process together (they claim them in blocks, :class:`~driftloop.registry.UsageStore`),
so two workers cannot each grant a tenant its whole daily quota. ``driftloop_tenants``
gains ``max_audit_rows``: how many predictions of the tenant the audit store may hold
(None: no quota). Existing tenants have no such quota and no usage yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0005_shared_usage"
down_revision = "r0004"  # r0004_tenants_and_keys.py
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driftloop_usage",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD (UTC)
        sa.Column("requests", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("driftloop_tenants") as batch:
        batch.add_column(sa.Column("max_audit_rows", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("driftloop_tenants") as batch:
        batch.drop_column("max_audit_rows")
    op.drop_table("driftloop_usage")
