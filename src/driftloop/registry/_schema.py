"""The registry's tables (SQLAlchemy Core). Changes go through a new Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "VERSION_TABLE",
    "alias_events",
    "loop_decisions",
    "loop_leases",
    "metadata",
    "model_versions",
    "models",
    "traffic_events",
    "traffic_policies",
]

VERSION_TABLE = "driftloop_registry_version"
"""Alembic's version table; named for the registry so other parts can share the database."""

metadata = MetaData()

models = Table(
    "driftloop_models",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "driftloop_model_versions",
    metadata,
    Column("model_name", String(200), ForeignKey("driftloop_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("flavor", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("gate_report", JSON, nullable=True),
    Column("artifacts", JSON, nullable=False),
    Column("profile", Text, nullable=True),
    Column("card", Text, nullable=False),
)

alias_events = Table(
    "driftloop_alias_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model_name", String(200), ForeignKey("driftloop_models.name"), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous_version", Integer, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("who", String(200), nullable=False),
    Column("why", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    UniqueConstraint("model_name", "alias", "id", name="uq_alias_event"),
)

Index("ix_alias_events_lookup", alias_events.c.model_name, alias_events.c.alias, alias_events.c.at)

# Traffic policies are release state like aliases, but keyed by the served model's name
# alone (no foreign key): a server serving from a models folder has no registered models.
# ``revision`` grows with every change of any model's policy, so one MAX tells a server
# whether anything changed; a NULL policy is a cleared one (back to the settings file's).
traffic_policies = Table(
    "driftloop_traffic_policies",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("policy", JSON(none_as_null=True), nullable=True),
    Column("revision", BigInteger, nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

Index("ix_traffic_policies_revision", traffic_policies.c.revision, unique=True)

traffic_events = Table(
    "driftloop_traffic_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("policy", JSON(none_as_null=True), nullable=True),
    Column("revision", BigInteger, nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

Index("ix_traffic_events_model", traffic_events.c.model, traffic_events.c.revision)

# The loop controller's decision log: one row per decision (a rollout's transitions, failed
# checks, retraining requests), written in the transaction that makes the decision's
# alias and traffic changes, so the last row of a model is its rollout state.
loop_decisions = Table(
    "driftloop_loop_decisions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("model", String(200), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("state", String(40), nullable=False),
    Column("step", Integer, nullable=True),
    Column("action", String(40), nullable=False),
    Column("numbers", JSON, nullable=False),
    Column("rule", Text, nullable=False),
    Column("who", String(200), nullable=False),
)

Index("ix_loop_decisions_model", loop_decisions.c.model, loop_decisions.c.id)

# One row per model led by a loop controller: ``holder`` acts on the model until
# ``expires_at``; taken over only by a conditional write once it expired.
loop_leases = Table(
    "driftloop_loop_leases",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
