"""The model registry: versions, aliases with history, artifacts, cards.

>>> import tempfile, lightgbm as lgb, numpy as np, pandas as pd
>>> folder = tempfile.mkdtemp()
>>> registry = Registry.from_url(f"sqlite:///{folder}/r.db", f"{folder}/artifacts")
>>> X = pd.DataFrame({"amount": np.arange(200.0)}); y = (X["amount"] > 150).astype(int)
>>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
>>> mv = registry.register("fraud", model, signature=Signature.from_frame(X))
>>> _ = registry.set_alias("fraud", "champion", mv.version, who="me", why="first model")
>>> registry.resolve("fraud", "champion").version
1
>>> bool(registry.load("fraud", 1).predict_batch(X.tail(1))[0] > 0.5)
True
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from driftloop.core.config import Settings
from driftloop.core.errors import (
    AliasNotFoundError,
    ConflictError,
    InvalidParameterError,
    ModelNotFoundError,
)
from driftloop.registry._card import model_card
from driftloop.registry._db import make_engine, upgrade_schema, writing
from driftloop.registry._flavors import FLAVORS, flavor_for, with_task
from driftloop.registry._keys import KeyStore
from driftloop.registry._model import LoadedModel
from driftloop.registry._release import Release
from driftloop.registry._rows import check_name, jsonable, utc, version_of
from driftloop.registry._schema import alias_events, model_versions, models, tenants
from driftloop.registry._signature import Signature
from driftloop.registry._store import ArtifactStore, artifact_store_from_url
from driftloop.registry._traffic import TrafficStore
from driftloop.registry._types import AliasEvent, ModelVersion
from driftloop.stats import Profile

__all__ = ["Registry"]

_LIGHT_COLUMNS = [c for c in model_versions.c if c.name not in ("profile", "card")]


class Registry:
    """Model versions and aliases in SQL (SQLite/PostgreSQL) plus content-addressed artifacts."""

    def __init__(self, engine: Engine, store: ArtifactStore, *, migrate: bool = True) -> None:
        self.engine = engine
        self.store = store
        if migrate:
            upgrade_schema(engine)

    @classmethod
    def from_url(cls, url: str, artifact_root: str, *, root: str | Path = ".") -> Registry:
        return cls(make_engine(url, root=root), artifact_store_from_url(artifact_root, root=root))

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry configured in ``[registry]`` of the project's settings."""
        return cls.from_url(
            settings.registry.url, settings.registry.artifact_root, root=settings.root
        )

    def close(self) -> None:
        self.engine.dispose()

    @property
    def traffic(self) -> TrafficStore:
        """The served models' traffic policies, kept in this registry's database."""
        return TrafficStore(self.engine)

    @property
    def keys(self) -> KeyStore:
        """Tenants and their API keys, kept in this registry's database."""
        return KeyStore(self.engine)

    @contextmanager
    def release(self) -> Iterator[Release]:
        """One write transaction for alias moves and traffic policies (and the caller's
        rows, through ``release.conn``): all of them commit together or none does."""
        with writing(self.engine) as conn:
            yield Release(conn, self._move)

    # -- registering ---------------------------------------------------------------------

    def register(
        self, name: str, model: Any, *, signature: Signature, **details: Any
    ) -> ModelVersion:
        """Save a fitted model with its flavor and register it (see :meth:`register_files`
        for ``details``: params, metrics, tags, lineage, gate_report, profile, created_by,
        alias, alias_reason)."""
        flavor = flavor_for(model)
        signature = with_task(flavor, model, signature)
        files = flavor.save(model, signature)
        return self.register_files(name, flavor.name, files, signature=signature, **details)

    def register_files(
        self,
        name: str,
        flavor: str,
        files: Mapping[str, bytes],
        *,
        signature: Signature,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Mapping[str, Any] | None = None,
        gate_report: Mapping[str, Any] | None = None,
        profile: Profile | None = None,
        created_by: str = "driftloop",
        alias: str | None = None,
        alias_reason: str = "",
        tenant: str = "default",
    ) -> ModelVersion:
        """Register a model already saved by its ``flavor`` (artifacts by role), as a model
        of ``tenant`` (a model's first version decides its tenant; another tenant's model
        of the same name is refused).

        Artifacts go first (content addressed, so a crash leaves only unreferenced bytes);
        the version row, its number and the optional alias move commit together or not
        at all.
        """
        check_name("Model", name)
        check_name("Tenant", tenant)
        if alias is not None:
            check_name("Alias", alias)
        if flavor not in FLAVORS or "model" not in files:
            raise InvalidParameterError(
                f"Flavor {flavor!r} with artifacts {sorted(files)} cannot be registered; "
                f"flavors: {', '.join(FLAVORS)}; a 'model' artifact is required."
            )
        artifacts = {role: self.store.put(data) for role, data in files.items()}
        now = datetime.now(UTC)
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with writing(self.engine) as conn:
            conn.execute(
                insert(models)
                .values(name=name, latest_version=0, created_at=now, tenant=tenant)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            owner = conn.execute(select(models.c.tenant).where(models.c.name == name)).scalar()
            if owner != tenant:
                raise ConflictError(
                    f"Model '{name}' belongs to another tenant; register it under another name."
                )
            self._check_model_quota(conn, name, tenant)
            version = conn.execute(
                update(models)
                .where(models.c.name == name)
                .values(latest_version=models.c.latest_version + 1)
                .returning(models.c.latest_version)
            ).scalar_one()
            mv = ModelVersion(
                name=name,
                version=version,
                flavor=flavor,
                created_at=now,
                created_by=created_by,
                signature=signature,
                params=dict(params or {}),
                metrics=dict(metrics or {}),
                tags=dict(tags or {}),
                lineage=dict(lineage or {}),
                gate_report=dict(gate_report) if gate_report is not None else None,
                artifacts=artifacts,
            )
            conn.execute(
                model_versions.insert().values(
                    model_name=name,
                    version=version,
                    flavor=flavor,
                    created_at=now,
                    created_by=created_by,
                    signature=signature.to_json(),
                    params=jsonable(mv.params),
                    metrics=jsonable(mv.metrics),
                    tags=dict(mv.tags),
                    lineage=jsonable(mv.lineage),
                    gate_report=jsonable(mv.gate_report),
                    artifacts=artifacts,
                    profile=json.dumps(profile.to_dict()) if profile is not None else None,
                    card=model_card(mv),
                )
            )
            if alias is not None:
                self._move(conn, name, alias, version, created_by, alias_reason, now, "move")
        return mv

    @staticmethod
    def _check_model_quota(conn: Any, name: str, tenant: str) -> None:
        """Refuse a new model past its tenant's ``max_models`` (the caller rolls back)."""
        limit = conn.execute(select(tenants.c.max_models).where(tenants.c.name == tenant)).scalar()
        if limit is None:
            return
        new = not conn.execute(
            select(models.c.latest_version).where(models.c.name == name)
        ).scalar()
        held = conn.execute(select(func.count()).where(models.c.tenant == tenant)).scalar_one()
        if new and held > limit:
            raise ConflictError(
                f"Tenant '{tenant}' may register at most {limit} models and has {held - 1}; "
                f"model '{name}' was not registered (driftloop keys quota --max-models)."
            )

    # -- reading versions ------------------------------------------------------------------

    def _row(self, name: str, version: int) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_LIGHT_COLUMNS).where(
                    model_versions.c.model_name == name, model_versions.c.version == version
                )
            ).first()
        if row is None:
            known = self.versions(name)
            listed = ", ".join(str(v.version) for v in known) or "none"
            raise ModelNotFoundError(
                f"Model '{name}' has no version {version}. Known versions: {listed}."
            )
        return row

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the latest when ``version`` is None)."""
        if version is None:
            version = self.latest_version(name)
        return version_of(self._row(name, version))

    def latest_version(self, name: str) -> int:
        with self.engine.connect() as conn:
            latest = conn.execute(
                select(models.c.latest_version).where(models.c.name == name)
            ).scalar()
        if not latest:
            names = ", ".join(m["name"] for m in self.list_models()) or "none"
            raise ModelNotFoundError(f"No model named '{name}' in the registry. Known: {names}.")
        return int(latest)

    def versions(self, name: str) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_LIGHT_COLUMNS)
                .where(model_versions.c.model_name == name)
                .order_by(model_versions.c.version)
            ).all()
        return [version_of(row) for row in rows]

    def list_models(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Each model (of ``tenant`` when given) with its tenant, latest version and
        current aliases."""
        query = select(models.c.name, models.c.latest_version, models.c.tenant)
        if tenant is not None:
            query = query.where(models.c.tenant == tenant)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "name": r.name,
                "tenant": r.tenant,
                "latest_version": r.latest_version,
                "aliases": self.aliases(r.name),
            }
            for r in sorted(rows, key=lambda r: r.name)
        ]

    def profile(self, name: str, version: int) -> Profile | None:
        """The reference profile stored with a version (what monitoring compares against)."""
        self._row(name, version)
        with self.engine.connect() as conn:
            text = conn.execute(
                select(model_versions.c.profile).where(
                    model_versions.c.model_name == name, model_versions.c.version == version
                )
            ).scalar()
        return Profile.from_dict(json.loads(text)) if text else None

    def card(self, name: str, version: int) -> str:
        """The generated Markdown model card."""
        self._row(name, version)
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    select(model_versions.c.card).where(
                        model_versions.c.model_name == name, model_versions.c.version == version
                    )
                ).scalar_one()
            )

    def load(self, name: str, version: int, *, prefer_onnx: bool = True) -> LoadedModel:
        """The model of a version, complete (runtime chosen: ONNX Runtime when it matches the
        native model, see ``prefer_onnx``), its artifacts verified against their sha256."""
        mv = self.get(name, version)
        files = {role: self.store.get(digest) for role, digest in mv.artifacts.items()}
        loaded = FLAVORS[mv.flavor].load(files, mv.signature, prefer_onnx=prefer_onnx)
        loaded.name, loaded.version = mv.name, str(mv.version)
        return loaded

    def verify(self, name: str, version: int) -> dict[str, str]:
        """Re-hash every artifact of a version; raises ArtifactIntegrityError on a mismatch."""
        mv = self.get(name, version)
        for digest in mv.artifacts.values():
            self.store.get(digest)
        return dict(mv.artifacts)

    # -- aliases --------------------------------------------------------------------------

    def _move(
        self,
        conn: Any,
        name: str,
        alias: str,
        version: int | None,
        who: str,
        why: str,
        at: datetime,
        kind: str,
    ) -> AliasEvent:
        conn.execute(select(models.c.name).where(models.c.name == name).with_for_update())
        current = conn.execute(self._alias_query(name, alias, None)).scalar()
        event = AliasEvent(name, alias, version, current, at, who, why, kind)
        conn.execute(alias_events.insert().values(**asdict(event)))
        return event

    def set_alias(
        self, name: str, alias: str, version: int, *, who: str, why: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at ``version``, recording who moved it and why."""
        check_name("Alias", alias)
        self._row(name, version)
        with writing(self.engine) as conn:
            return self._move(conn, name, alias, version, who, why, datetime.now(UTC), "move")

    def remove_alias(self, name: str, alias: str, *, who: str, why: str = "") -> AliasEvent:
        """Unset ``alias`` (recorded in its history like any move)."""
        self.resolve(name, alias)
        with writing(self.engine) as conn:
            return self._move(conn, name, alias, None, who, why, datetime.now(UTC), "remove")

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of a model, oldest first."""
        query = select(alias_events).where(alias_events.c.model_name == name)
        if alias is not None:
            query = query.where(alias_events.c.alias == alias)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(alias_events.c.id)).all()
        fields = [c.name for c in alias_events.c if c.name != "id"]
        return [AliasEvent(**{**{f: getattr(r, f) for f in fields}, "at": utc(r.at)}) for r in rows]

    def aliases(self, name: str) -> dict[str, int]:
        """Current aliases of a model: alias -> version."""
        current: dict[str, int | None] = {}
        for event in self.history(name):
            current[event.alias] = event.version
        return {alias: v for alias, v in sorted(current.items()) if v is not None}

    def _alias_query(self, name: str, alias: str, at: datetime | None) -> Any:
        query = select(alias_events.c.version).where(
            alias_events.c.model_name == name, alias_events.c.alias == alias
        )
        # Now: the last move recorded (clocks of different writers may disagree);
        # at a time: the last move made at or before it.
        order = [alias_events.c.id.desc()]
        if at is not None:
            query = query.where(alias_events.c.at <= utc(at))
            order.insert(0, alias_events.c.at.desc())
        return query.order_by(*order).limit(1)

    def _no_alias(self, name: str, alias: str, at: datetime | None) -> AliasNotFoundError:
        self.latest_version(name)  # an unknown model is named as such
        known = ", ".join(self.aliases(name)) or "none"
        when = f" at {utc(at).isoformat()}" if at is not None else ""
        return AliasNotFoundError(
            f"Model '{name}' has no alias '{alias}'{when}. Current aliases: {known}."
        )

    def alias_version(self, name: str, alias: str) -> int:
        """Just the version number ``alias`` points at now: one indexed query, for polling."""
        with self.engine.connect() as conn:
            version = conn.execute(self._alias_query(name, alias, None)).scalar()
        if version is None:
            raise self._no_alias(name, alias, None)
        return int(version)

    def _resolve(self, name: str, alias: str, at: datetime | None) -> ModelVersion:
        held = self._alias_query(name, alias, at).scalar_subquery()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_LIGHT_COLUMNS).where(
                    model_versions.c.model_name == name, model_versions.c.version == held
                )
            ).first()
        if row is None:
            raise self._no_alias(name, alias, at)
        return version_of(row)

    def resolve(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at now, in one query (poll it to follow promotions)."""
        return self._resolve(name, alias, None)

    def alias_at(self, name: str, alias: str, at: datetime) -> ModelVersion:
        """The version ``alias`` pointed at, at time ``at`` (naive times are UTC)."""
        return self._resolve(name, alias, at)

    def rollback_target(self, name: str, alias: str = "champion") -> int:
        """The version :meth:`rollback` would move ``alias`` to (the holder before the
        current one), without moving it: what a confirmation asks about.

        Moves and rollbacks replay as a stack: rolling back twice goes two holders back.
        """
        stack: list[int] = []
        for event in self.history(name, alias):
            if event.kind == "rollback":
                stack.pop()
            elif event.version is None:
                stack.clear()
            else:
                stack.append(event.version)
        if not stack:
            raise AliasNotFoundError(f"Model '{name}' has no alias '{alias}' to roll back.")
        if len(stack) < 2:
            raise ConflictError(
                f"Alias '{alias}' of model '{name}' has no previous holder to roll back to "
                f"(it has only pointed at version {stack[-1]})."
            )
        return stack[-2]

    def rollback(
        self, name: str, alias: str = "champion", *, who: str, why: str = "rollback"
    ) -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before the current one
        (:meth:`rollback_target`)."""
        target = self.rollback_target(name, alias)
        with writing(self.engine) as conn:
            return self._move(conn, name, alias, target, who, why, datetime.now(UTC), "rollback")
