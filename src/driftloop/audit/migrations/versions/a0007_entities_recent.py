"""Entity rows are staged in unindexed tables and merged into the index in bulk.

``audit_entities_recent_0`` .. ``audit_entities_recent_15`` have the columns of
``audit_entities`` and no index; an entity row goes to the one numbered by a CRC-32 of
its name and value (``driftloop.audit._sql.entity_part``). Every commit of the audit
writer appends its entity rows there, in the transaction of their predictions, instead of
inserting one row per entity value at a random place of ``audit_entities_key``, which
dirtied and wrote about one index page per audited row on a grown log. A merge moves one
staging table into ``audit_entities``, sorted by ``(name, value, ts_us)``, so the index
takes its rows in key order, a few per page; sixteen tables make each merge a sixteenth
of the work (its stall on the writer too) at the same number of rows per index page.
Readers read ``audit_entities`` and the one staging table of the value they look up.

Rows already in ``audit_entities`` stay there: the upgrade only adds tables.
"""

from __future__ import annotations

from alembic import op

from driftloop.core.migrations import option

revision = "a0007_entities_recent"
down_revision = "a0006_route_hours_writer"
branch_labels = None
depends_on = None

PARTS = 16


def _t(name: str) -> str:
    schema = option("schema")
    return f'"{schema}".audit_{name}' if schema else f"audit_{name}"


def upgrade() -> None:
    for part in range(PARTS):
        op.execute(
            f"CREATE TABLE {_t(f'entities_recent_{part}')} (name TEXT NOT NULL, "
            "value TEXT NOT NULL, ts_us BIGINT NOT NULL, prediction_id TEXT NOT NULL)"
        )


def downgrade() -> None:
    for part in range(PARTS):
        op.execute(
            f"INSERT INTO {_t('entities')} (name, value, ts_us, prediction_id) "
            f"SELECT name, value, ts_us, prediction_id FROM {_t(f'entities_recent_{part}')}"
        )
        op.execute(f"DROP TABLE {_t(f'entities_recent_{part}')}")
