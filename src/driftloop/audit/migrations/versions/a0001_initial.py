"""The audit log as created before migrations: predictions, entities, labels.

The statements are those the audit log ran at open time until then, so a database made
that way is this revision exactly (and is stamped with it, not recreated).
"""

from __future__ import annotations

from alembic import op

from driftloop.core.migrations import option

revision = "a0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None


def _t(name: str) -> str:
    schema = option("schema")
    return f'"{schema}".audit_{name}' if schema else f"audit_{name}"


def upgrade() -> None:
    op.execute(
        f"CREATE TABLE {_t('predictions')} ("
        "prediction_id TEXT PRIMARY KEY, ts_us BIGINT NOT NULL, model TEXT NOT NULL, "
        "version TEXT NOT NULL, route TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, "
        "decision TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, "
        "entity_keys TEXT NOT NULL, features TEXT NOT NULL, feature_ts TEXT NOT NULL, "
        "explanation TEXT)"
    )
    op.execute(f"CREATE INDEX audit_predictions_ts ON {_t('predictions')} (ts_us)")
    op.execute(
        f"CREATE TABLE {_t('entities')} (name TEXT NOT NULL, "
        "value TEXT NOT NULL, ts_us BIGINT NOT NULL, prediction_id TEXT NOT NULL)"
    )
    op.execute(f"CREATE INDEX audit_entities_key ON {_t('entities')} (name, value, ts_us)")
    op.execute(
        f"CREATE TABLE {_t('labels')} (prediction_id TEXT PRIMARY KEY, "
        "label DOUBLE PRECISION NOT NULL, label_ts_us BIGINT NOT NULL)"
    )


def downgrade() -> None:
    for name in ("labels", "entities", "predictions"):
        op.execute(f"DROP TABLE {_t(name)}")
