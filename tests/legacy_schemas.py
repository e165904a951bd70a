"""The tables as driftloop made them before migrations, written out literally.

A user upgrading driftloop has databases made by this DDL (audit log: raw ``CREATE TABLE
IF NOT EXISTS``; monitoring and feature definitions: SQLAlchemy ``create_all`` of these
tables). Tests make such a database, fill it, and open it with the current code. Do not
edit these to follow the code: they are history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


def audit_ddl(prefix: str = "") -> list[str]:
    """The audit log's statements; ``prefix`` is a schema qualifier with its dot."""
    t = f"{prefix}audit_"
    return [
        f"CREATE TABLE IF NOT EXISTS {t}predictions ("
        "prediction_id TEXT PRIMARY KEY, ts_us BIGINT NOT NULL, model TEXT NOT NULL, "
        "version TEXT NOT NULL, route TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, "
        "decision TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, "
        "entity_keys TEXT NOT NULL, features TEXT NOT NULL, feature_ts TEXT NOT NULL, "
        "explanation TEXT)",
        f"CREATE INDEX IF NOT EXISTS audit_predictions_ts ON {t}predictions (ts_us)",
        f"CREATE TABLE IF NOT EXISTS {t}entities (name TEXT NOT NULL, "
        "value TEXT NOT NULL, ts_us BIGINT NOT NULL, prediction_id TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS audit_entities_key ON {t}entities (name, value, ts_us)",
        f"CREATE TABLE IF NOT EXISTS {t}labels (prediction_id TEXT PRIMARY KEY, "
        "label DOUBLE PRECISION NOT NULL, label_ts_us BIGINT NOT NULL)",
    ]


def monitoring_metadata(prefix: str = "monitoring_") -> sa.MetaData:
    metadata = sa.MetaData()

    def key() -> list[sa.Column[Any]]:
        return [
            sa.Column("model", sa.String(200), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("route", sa.String(100), nullable=False),
        ]

    sa.Table(
        f"{prefix}windows",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *key(),
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
    sa.Table(
        f"{prefix}results",
        metadata,
        sa.Column("window_id", sa.Integer, nullable=False, index=True),
        *key(),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("statistic", sa.String(40), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Index(f"{prefix}results_series", "model", "feature", "statistic", "window_end"),
    )
    sa.Table(
        f"{prefix}incidents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *key(),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    return metadata


def features_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("feature_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "feature_definitions",
        metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("applied_at", sa.DateTime, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    sa.Table(
        "feature_stats",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("view", sa.String(200), nullable=False, index=True),
        sa.Column("view_version", sa.String(32), nullable=False),
        sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("newest", sa.DateTime, nullable=True),
        sa.Column("freshness_s", sa.Float, nullable=True),
        sa.Column("columns", sa.Text, nullable=False),
    )
    return metadata


def create_old_features(engine: sa.Engine) -> None:
    """The feature registry's open before migrations: create_all, then version row 1."""
    metadata = features_metadata()
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(metadata.tables["feature_schema"].insert().values(version=1))


def shape(engine: sa.Engine, schema: str | None = None) -> dict[str, Any]:
    """Every table's columns, key, indexes and unique constraints, as the database reports
    them (version tables left out): two databases of one shape hold the same schema."""
    inspector = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names(schema=schema)):
        if table.startswith("alembic_version"):
            continue
        columns = [
            (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
            for c in inspector.get_columns(table, schema=schema)
        ]
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table, schema=schema)
        )
        uniques = sorted(
            (str(u["name"]), tuple(u["column_names"]))
            for u in inspector.get_unique_constraints(table, schema=schema)
        )
        key = inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]
        out[table] = {"columns": columns, "key": key, "indexes": indexes, "uniques": uniques}
    return out


@contextmanager
def postgres_schema(url: str, prefix: str = "mig") -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema for one test, dropped after it: (name, URL whose
    search_path is it)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield schema, f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
