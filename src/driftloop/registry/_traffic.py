"""Traffic policies (A/B split, canary, shadow) as release state, changed at run time.

A policy is a JSON object that ``driftloop.serving`` interprets; the store keeps it with
who set it, when and why, and an append-only history. Every change of any model's policy
takes the next ``revision`` (one counter for the whole database), so a server polls one
aggregate, :meth:`TrafficStore.revision`, and reloads only when it moved. Revisions are
handed out under the write lock (SQLite's, or an advisory lock on PostgreSQL), so they
become visible in the order they were given: a poller never skips one.

>>> import tempfile
>>> store = TrafficStore.at(f"sqlite:///{tempfile.mkdtemp()}/traffic.db")
>>> store.revision()
0
>>> state = store.set("fraud", {"arms": {"champion": 90, "challenger": 10}}, who="ana",
...                   why="try v7 on 10%")
>>> (state.revision, store.get("fraud").policy, store.revision())
(1, {'arms': {'champion': 90, 'challenger': 10}}, 1)
>>> store.set("fraud", None, who="ana", why="back to the config").policy is None
True
>>> [s.revision for s in store.history("fraud")]
[2, 1]
>>> store.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from driftloop.core.errors import InvalidParameterError
from driftloop.registry._db import make_engine, upgrade_schema, writing
from driftloop.registry._rows import check_name, jsonable, utc
from driftloop.registry._schema import traffic_events, traffic_policies

__all__ = ["TrafficState", "TrafficStore", "write_policy"]

# Serialises PostgreSQL writers between reading MAX(revision) and committing ("drtf").
_LOCK_KEY = 0x64727466
_FIELDS = ("model", "policy", "revision", "changed_by", "changed_at", "reason")


@dataclass(frozen=True)
class TrafficState:
    """A model's traffic policy as set at ``revision`` (``policy`` None: cleared, so the
    settings file's policy applies), with who changed it, when and why."""

    model: str
    policy: dict[str, Any] | None
    revision: int
    changed_by: str
    changed_at: datetime
    reason: str


def _state(row: Row[Any]) -> TrafficState:
    return TrafficState(
        model=row.model,
        policy=row.policy,
        revision=int(row.revision),
        changed_by=row.changed_by,
        changed_at=utc(row.changed_at),
        reason=row.reason,
    )


class TrafficStore:
    """Traffic policies of served models in the registry's database (SQLite/PostgreSQL).

    The engine's database must be at the registry's newest schema: a :class:`Registry`
    migrates its own (``registry.traffic``), :meth:`at` migrates the one it opens.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def at(cls, url: str, *, root: str | Path = ".") -> TrafficStore:
        """A store of its own at ``url`` (a relative SQLite path is relative to ``root``),
        migrated: for a server serving from a models folder, ``sqlite:///<folder>/traffic.db``."""
        engine = make_engine(url, root=root)
        upgrade_schema(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the engine's connections (a store from :meth:`at` owns its engine)."""
        self.engine.dispose()

    def set(
        self, model: str, policy: dict[str, Any] | None, *, who: str, why: str = ""
    ) -> TrafficState:
        """Make ``policy`` the model's traffic policy (None: clear it), recorded with who
        and why; the current policy and its history entry commit together."""
        with writing(self.engine) as conn:
            return write_policy(conn, model, policy, who=who, why=why)

    def get(self, model: str) -> TrafficState | None:
        """The model's current state (policy None when cleared); None if never set."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(traffic_policies).where(traffic_policies.c.model == model)
            ).first()
        return None if row is None else _state(row)

    def revision(self) -> int:
        """The newest revision over all models (0: none set yet): one indexed aggregate,
        for servers to poll."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(traffic_policies.c.revision))).scalar() or 0)

    def all(self) -> dict[str, TrafficState]:
        """Every model's current state (cleared ones included), by model name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(traffic_policies).order_by(traffic_policies.c.model))
            return {row.model: _state(row) for row in rows}

    def history(self, model: str, limit: int = 50) -> list[TrafficState]:
        """The model's last ``limit`` changes, newest first."""
        if limit < 1:
            raise InvalidParameterError(f"History limit must be at least 1; got {limit}.")
        query = (
            select(*(traffic_events.c[f] for f in _FIELDS))
            .where(traffic_events.c.model == model)
            .order_by(traffic_events.c.revision.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_state(row) for row in conn.execute(query)]


def write_policy(
    conn: Connection, model: str, policy: dict[str, Any] | None, *, who: str, why: str
) -> TrafficState:
    """:meth:`TrafficStore.set` inside the write transaction ``conn`` (see :func:`writing`),
    so a caller commits a policy change together with rows of its own."""
    check_name("Model", model)
    if policy is not None and not isinstance(policy, dict):
        raise InvalidParameterError(
            f"The traffic policy of model '{model}' must be a JSON object or None; "
            f"got {type(policy).__name__}."
        )
    if not who or len(who) > 200:
        raise InvalidParameterError(
            f"Who changes the traffic policy of model '{model}' must be named in 1-200 "
            f"characters; got {who!r}."
        )
    values = {
        "model": model,
        "policy": jsonable(policy),
        "changed_by": who,
        "changed_at": datetime.now(UTC),
        "reason": why,
    }
    postgres = conn.dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    if postgres:  # SQLite's writers already queue on BEGIN IMMEDIATE
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    current = conn.execute(select(func.max(traffic_policies.c.revision))).scalar()
    values["revision"] = int(current or 0) + 1
    upsert = insert(traffic_policies).values(**values)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["model"],
            set_={k: upsert.excluded[k] for k in _FIELDS if k != "model"},
        )
    )
    conn.execute(traffic_events.insert().values(**values))
    return TrafficState(**values)
