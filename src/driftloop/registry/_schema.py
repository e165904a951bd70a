"""The registry's tables (SQLAlchemy Core). Changes go through a new Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
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
    "api_keys",
    "key_events",
    "loop_decisions",
    "loop_leases",
    "metadata",
    "model_versions",
    "models",
    "tenants",
    "traffic_events",
    "traffic_policies",
    "usage",
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
    Column("tenant", String(100), nullable=False, server_default="default"),
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

# Tenants and their API keys. A key's secret is never stored: only its SHA-256, which
# the server looks presented tokens up by. ``scopes`` is a JSON list of predict,
# feedback, read, admin; a NULL ``rate_per_s`` is no per-key limit, a NULL
# ``requests_per_day`` or ``max_models`` no quota.
tenants = Table(
    "driftloop_tenants",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("requests_per_day", BigInteger, nullable=True),
    Column("max_models", Integer, nullable=True),
    Column("max_audit_rows", BigInteger, nullable=True),
)

usage = Table(
    "driftloop_usage",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("requests", BigInteger, nullable=False),
)

api_keys = Table(
    "driftloop_api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(100), ForeignKey("driftloop_tenants.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("rate_per_s", Float, nullable=True),
    Column("burst", Integer, nullable=True),
)

Index("ix_api_keys_tenant", api_keys.c.tenant)

# Who did what to keys and tenants (create, revoke, quota), kept append-only.
key_events = Table(
    "driftloop_key_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(40), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("who", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
)
