"""The decision log: every decision of the loop controller, and the rollout state it
leaves, in the registry's database (``driftloop_loop_decisions``).

The last decision of a model that changed its state *is* its state: a transition is one
row written in the transaction that makes its alias and traffic changes, so a controller
killed at any point finds, when restarted, exactly the state whose changes committed.
Failed checks and retraining requests are decisions that keep the state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from driftloop.core.errors import InvalidParameterError
from driftloop.registry import loop_decisions

__all__ = ["STATES", "Decision", "RolloutState", "history", "record", "rollout_state"]

STATES = ("idle", "retraining", "gated", "shadow", "canary", "promoted", "rolled_back")
"""Rollout states: idle -> retraining -> gated -> shadow -> canary (step i) -> promoted,
or rolled_back from any of them. ``promoted`` and ``rolled_back`` rest like ``idle``."""
RESTING = ("idle", "promoted", "rolled_back")
KEEPS_STATE = ("request", "check-failed")


@dataclass(frozen=True)
class Decision:
    """One row of the decision log: at ``at``, about ``model``, moving from the champion
    ``from_version`` towards ``to_version``, the controller (``who``) took ``action``,
    leaving ``state`` (canary ``step``), decided by ``numbers`` under ``rule``."""

    at: datetime
    model: str
    state: str
    action: str
    rule: str
    who: str
    from_version: int | None = None
    to_version: int | None = None
    step: int | None = None
    numbers: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "state": self.state,
            "step": self.step,
            "action": self.action,
            "numbers": dict(self.numbers),
            "rule": self.rule,
            "who": self.who,
        }


@dataclass(frozen=True)
class RolloutState:
    """Where a model's rollout is: ``state`` (canary ``step``), the champion it started
    from and the challenger, since when, the failed checks in this state, and whether a
    manual retraining was requested since the last one began (its reason)."""

    model: str
    state: str = "idle"
    step: int | None = None
    champion: int | None = None
    challenger: int | None = None
    since: datetime | None = None
    failed: int = 0
    last_retrain: datetime | None = None
    requested: str | None = None

    @property
    def resting(self) -> bool:
        return self.state in RESTING


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record(conn: Connection, decision: Decision) -> int:
    """Write ``decision`` inside the caller's transaction; its id."""
    if decision.state not in STATES:
        raise InvalidParameterError(
            f"Rollout state {decision.state!r} is not one of {', '.join(STATES)}."
        )
    result = conn.execute(
        loop_decisions.insert().values(
            at=_utc(decision.at),
            model=decision.model,
            from_version=decision.from_version,
            to_version=decision.to_version,
            state=decision.state,
            step=decision.step,
            action=decision.action,
            numbers=_jsonable(decision.numbers),
            rule=decision.rule,
            who=decision.who,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def _jsonable(numbers: Mapping[str, Any]) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    out: dict[str, Any] = json.loads(json.dumps(clean(dict(numbers)), default=str))
    return out


def _decision(row: Any) -> Decision:
    return Decision(
        id=int(row.id),
        at=_utc(row.at),
        model=row.model,
        from_version=row.from_version,
        to_version=row.to_version,
        state=row.state,
        step=row.step,
        action=row.action,
        numbers=row.numbers or {},
        rule=row.rule,
        who=row.who,
    )


def history(db: Engine | Connection, model: str, limit: int | None = None) -> list[Decision]:
    """The model's decisions, oldest first (the last ``limit`` of them)."""
    query = select(loop_decisions).where(loop_decisions.c.model == model)
    query = query.order_by(loop_decisions.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    if isinstance(db, Connection):
        rows = db.execute(query).all()
    else:
        with db.connect() as conn:
            rows = conn.execute(query).all()
    return [_decision(row) for row in reversed(rows)]


def _rows(db: Engine | Connection, query: Any) -> list[Any]:
    if isinstance(db, Connection):
        return list(db.execute(query).all())
    with db.connect() as conn:
        return list(conn.execute(query).all())


def rollout_state(db: Engine | Connection, model: str) -> RolloutState:
    """The model's state as its decisions left it (idle when it has none): its last
    transition, the failed checks and requests after it, and its last retraining; a few
    indexed reads however long the log grew."""
    t = loop_decisions
    mine = select(t).where(t.c.model == model)
    last = _rows(db, mine.where(t.c.action.not_in(KEEPS_STATE)).order_by(t.c.id.desc()).limit(1))
    retrain = _rows(db, mine.where(t.c.action == "retrain").order_by(t.c.id.desc()).limit(1))
    after_retrain = retrain[0].id if retrain else 0
    request = _rows(
        db,
        mine.where(t.c.action == "request", t.c.id > after_retrain)
        .order_by(t.c.id.desc())
        .limit(1),
    )
    requested = request[0].rule if request else None
    if not last:
        return RolloutState(model, requested=requested)
    current = _decision(last[0])
    failed = _rows(
        db,
        select(func.count())
        .select_from(t)
        .where(t.c.model == model, t.c.action == "check-failed", t.c.id > current.id),
    )[0][0]
    return RolloutState(
        model,
        state=current.state,
        step=current.step,
        champion=current.from_version,
        challenger=current.to_version,
        since=current.at,
        failed=int(failed),
        last_retrain=_utc(retrain[0].at) if retrain else None,
        requested=requested,
    )
