"""Applied feature definitions and feature statistics, in the registry database.

Tables (SQLAlchemy Core, separate from the model registry's own tables):
``feature_definitions`` (every applied version of every definition; the newest applied is
``active``) and ``feature_stats`` (one row per view and statistics run, for monitoring to
chart); ``feature_schema`` (one row, layout version 1) is the version marker kept before
migrations, left as it was. They are created and upgraded by the features branch of
migrations (``migrations/``, revision ``f0001`` first), whose applied revision is kept in
``alembic_version_features``, apart from the model registry's in the same database; a
database made before migrations is stamped ``f0001``, not recreated. ``f0002_tenants``
gives every definition a tenant (``default`` for those applied before).

Definitions belong to a tenant: a tenant applies, plans and lists its own, and a name
another tenant holds is refused (names are unique over every tenant, as model names are).

Applying compares each definition with the active one: additions and compatible edits
are recorded as new versions; a type change, or the removal of a feature that a
registered model uses (``in_use()``), is refused unless ``new_version=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from driftloop.core.errors import ConflictError, IncompatibleChangeError
from driftloop.core.migrations import Branch, upgrade_schema
from driftloop.features._catalog import Catalog, Definition
from driftloop.features._time import now_utc

__all__ = ["ApplyPlan", "Change", "DefinitionRegistry"]

_meta = sa.MetaData()
_schema = sa.Table("feature_schema", _meta, sa.Column("version", sa.Integer, nullable=False))
_definitions = sa.Table(
    "feature_definitions",
    _meta,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("tenant", sa.String(100), nullable=False, server_default="default", index=True),
)
_stats = sa.Table(
    "feature_stats",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("view", sa.String(200), nullable=False, index=True),
    sa.Column("view_version", sa.String(32), nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("newest", sa.DateTime, nullable=True),
    sa.Column("freshness_s", sa.Float, nullable=True),
    sa.Column("columns", sa.Text, nullable=False),
)
BRANCH = Branch(
    part="features",
    scripts=Path(__file__).parent / "migrations",
    version_table="alembic_version_features",
    lock_key=0x64726C66,  # "drlf": serialises concurrent migrations on PostgreSQL
    first="f0001",
    legacy_tables=("feature_schema", "feature_definitions", "feature_stats"),
    metadata=_meta,
)


@dataclass(frozen=True)
class Change:
    """One line of an apply diff."""

    kind: str  # "added", "changed", "unchanged", "removed"
    name: str
    definition_kind: str
    old_version: str | None
    new_version: str | None
    details: tuple[str, ...] = ()
    incompatible: tuple[str, ...] = ()

    def line(self) -> str:
        sign = {"added": "+", "changed": "~", "unchanged": "=", "removed": "-"}[self.kind]
        versions = {
            "added": f"v {self.new_version}",
            "changed": f"{self.old_version} -> {self.new_version}",
            "unchanged": f"v {self.new_version}",
            "removed": f"was {self.old_version}",
        }[self.kind]
        text = f"{sign} {self.definition_kind} {self.name} ({versions})"
        if self.details:
            text += ": " + "; ".join(self.details)
        return text


@dataclass
class ApplyPlan:
    changes: list[Change] = field(default_factory=list)

    @property
    def incompatible(self) -> list[str]:
        return [f"{c.name}: {p}" for c in self.changes for p in c.incompatible]

    def lines(self) -> list[str]:
        return [c.line() for c in self.changes]

    @property
    def modified(self) -> bool:
        return any(c.kind != "unchanged" for c in self.changes)


def _schema_of(spec: dict[str, Any]) -> dict[str, str]:
    schema = spec.get("schema") or {}
    return {str(k): str(v) for k, v in schema.items()}


def _diff(
    name: str, old: dict[str, Any] | None, new: dict[str, Any] | None, used: set[str]
) -> tuple[list[str], list[str]]:
    before = _schema_of(old or {})
    after = _schema_of(new or {})
    details: list[str] = []
    problems: list[str] = []
    details += [f"+ {feat} {after[feat]}" for feat in sorted(set(after) - set(before))]
    for feat in sorted(set(before) - set(after)):
        details.append(f"- {feat}")
        if f"{name}:{feat}" in used or feat in used:
            problems.append(f"removes feature '{feat}', used by a registered model")
    for feat in sorted(set(before) & set(after)):
        if before[feat] != after[feat]:
            details.append(f"~ {feat} {before[feat]} -> {after[feat]}")
            problems.append(f"changes the type of '{feat}' from {before[feat]} to {after[feat]}")
    if old and new and not details:
        changed = sorted(k for k in new if k != "schema" and new.get(k) != old.get(k))
        details += [f"{k} changed" for k in changed]
    return details, problems


class DefinitionRegistry:
    """Versioned feature definitions and statistics in a SQLAlchemy database."""

    def __init__(self, engine: sa.Engine | str) -> None:
        self.engine = sa.create_engine(engine) if isinstance(engine, str) else engine
        upgrade_schema(self.engine, BRANCH)

    def active(self, tenant: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
        """Name -> (version, spec) of every active definition (of ``tenant`` when given)."""
        d = _definitions
        query = sa.select(d.c.name, d.c.version, d.c.spec).where(d.c.active)
        if tenant is not None:
            query = query.where(d.c.tenant == tenant)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {r.name: (r.version, json.loads(r.spec)) for r in rows}

    def tenants(self) -> dict[str, str]:
        """Name -> tenant of every definition ever applied."""
        query = sa.select(_definitions.c.name, _definitions.c.tenant).distinct()
        with self.engine.connect() as conn:
            return {r.name: r.tenant for r in conn.execute(query)}

    def versions(self, name: str) -> list[tuple[str, datetime, bool]]:
        """Every applied version of a definition, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_definitions.c.version, _definitions.c.applied_at, _definitions.c.active)
                .where(_definitions.c.name == name)
                .order_by(_definitions.c.applied_at)
            ).all()
        return [(r.version, r.applied_at, bool(r.active)) for r in rows]

    def plan(
        self, definitions: Sequence[Definition], in_use: set[str], *, tenant: str = "default"
    ) -> ApplyPlan:
        """What applying ``definitions`` as ``tenant``'s would change (its own definitions
        only); a name another tenant holds is refused."""
        catalog = Catalog(definitions)  # validates names and on-demand cycles
        owners = self.tenants()
        taken = sorted(d.name for d in catalog.all() if owners.get(d.name, tenant) != tenant)
        if taken:
            raise ConflictError(
                f"Feature definition(s) {', '.join(taken)} belong to another tenant; "
                "apply them under other names."
            )
        current = self.active(tenant)
        plan = ApplyPlan()
        new = {d.name: d for d in catalog.all()}
        for name, d in new.items():
            spec = d.spec()
            kind = str(spec["kind"])
            if name not in current:
                plan.changes.append(Change("added", name, kind, None, d.version))
                continue
            old_version, old_spec = current[name]
            if old_version == d.version:
                plan.changes.append(Change("unchanged", name, kind, old_version, d.version))
                continue
            details, problems = _diff(
                name, old_spec, json.loads(json.dumps(spec, default=str)), in_use
            )
            plan.changes.append(
                Change(
                    "changed", name, kind, old_version, d.version, tuple(details), tuple(problems)
                )
            )
        for name in sorted(set(current) - set(new)):
            old_version, old_spec = current[name]
            _, problems = _diff(name, old_spec, None, in_use)
            plan.changes.append(
                Change(
                    "removed", name, str(old_spec["kind"]), old_version, None, (), tuple(problems)
                )
            )
        return plan

    def apply(
        self,
        definitions: Sequence[Definition],
        *,
        in_use: Callable[[], set[str]] = set,
        new_version: bool = False,
        tenant: str = "default",
    ) -> ApplyPlan:
        """Record the definitions as ``tenant``'s (its definitions not among them are
        removed); refuse incompatible changes unless ``new_version``."""
        plan = self.plan(definitions, in_use(), tenant=tenant)
        if plan.incompatible and not new_version:
            raise IncompatibleChangeError(
                "Refusing incompatible feature changes: "
                + "; ".join(plan.incompatible)
                + ". Apply with new_version=True (--new-version) to record them as new "
                "versions; models keep the versions they were trained with."
            )
        by_name = {d.name: d for d in Catalog(definitions).all()}
        now = now_utc()
        with self.engine.begin() as conn:
            for change in plan.changes:
                if change.kind == "unchanged":
                    continue
                conn.execute(
                    _definitions.update()
                    .where(_definitions.c.name == change.name, _definitions.c.tenant == tenant)
                    .values(active=False)
                )
                if change.kind == "removed":
                    continue
                d = by_name[change.name]
                spec_text = json.dumps(d.spec(), sort_keys=True, default=str)
                exists = conn.execute(
                    sa.select(_definitions.c.version).where(
                        (_definitions.c.name == d.name) & (_definitions.c.version == d.version)
                    )
                ).first()
                if exists:
                    conn.execute(
                        _definitions.update()
                        .where(
                            (_definitions.c.name == d.name) & (_definitions.c.version == d.version)
                        )
                        .values(active=True, applied_at=now)
                    )
                else:
                    conn.execute(
                        _definitions.insert().values(
                            name=d.name,
                            version=d.version,
                            kind=change.definition_kind,
                            spec=spec_text,
                            applied_at=now,
                            active=True,
                            tenant=tenant,
                        )
                    )
        return plan

    def record_stats(self, stats: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _stats.insert().values(
                    view=stats["view"],
                    view_version=stats["view_version"],
                    computed_at=stats["computed_at"],
                    row_count=stats["row_count"],
                    newest=stats["newest"],
                    freshness_s=stats["freshness_s"],
                    columns=json.dumps(stats["columns"], sort_keys=True),
                )
            )

    def stats_history(self, view: str, limit: int = 50) -> list[dict[str, Any]]:
        """The latest statistics runs of a view, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_stats)
                .where(_stats.c.view == view)
                .order_by(_stats.c.id.desc())
                .limit(limit)
            ).all()
        return [{**r._asdict(), "columns": json.loads(r.columns)} for r in rows]

    def close(self) -> None:
        self.engine.dispose()
