"""A served model's arms as every server process of the project routes them now: what
the traffic page shows as each arm's breaker state, failed and refused calls.

Breakers live in each server process; each tells its arms on the project's worker board
(:class:`driftloop.serving.WorkerBoard`, written by ``driftloop serve``). The dashboard,
mounted in a worker or alone (``driftloop ui``), reads every process's report: arms are
merged over the processes that reported lately, and a process silent past the board's
``stale_s`` is shown as stale (its last states, not trusted).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from driftloop.serving import WorkerReport

__all__ = ["ArmNow", "WorkerArms", "arms_now"]


@dataclass(frozen=True)
class ArmNow:
    """One arm over the live processes: how many have its breaker in each state, and its
    calls that failed or an open breaker refused (summed over every report, stale ones
    too: those calls happened)."""

    name: str
    version: str | None
    weight: float
    breakers: dict[str, int]
    failed: int
    refused: int

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half_open`` when every live process agrees; else the
        states with their counts (``open on 1 of 2``); ``unknown`` with none live."""
        live = sum(self.breakers.values())
        if not live:
            return "unknown"
        if len(self.breakers) == 1:
            return next(iter(self.breakers))
        return ", ".join(f"{s} on {n} of {live}" for s, n in sorted(self.breakers.items()))


@dataclass(frozen=True)
class WorkerArms:
    """One process's last report of a model's arms."""

    worker: str
    pid: int
    age_s: float
    stale: bool
    arms: list[dict[str, Any]] = field(default_factory=list)


def arms_now(reports: list[WorkerReport], model: str) -> tuple[list[ArmNow], list[WorkerArms]]:
    """``model``'s arms merged over the processes that serve it, and each process's own
    (freshest first); both empty when no process reported serving it."""
    workers = [
        WorkerArms(r.worker, r.pid, r.age_s, r.stale, r.models[model])
        for r in reports
        if model in r.models
    ]
    order: dict[tuple[str, str | None], dict[str, Any]] = {}
    breakers: dict[tuple[str, str | None], Counter[str]] = {}
    failed: Counter[tuple[str, str | None]] = Counter()
    refused: Counter[tuple[str, str | None]] = Counter()
    for worker in workers:
        for arm in worker.arms:
            version = None if arm.get("version") is None else str(arm["version"])
            key = (str(arm["name"]), version)
            if key not in order or (not worker.stale and order[key].get("_stale")):
                order[key] = {**arm, "_stale": worker.stale}
            counted = breakers.setdefault(key, Counter())
            if not worker.stale:
                counted[str(arm.get("breaker") or "not loaded")] += 1
            failed[key] += int(arm.get("failed") or 0)
            refused[key] += int(arm.get("refused") or 0)
    merged = [
        ArmNow(
            name=name,
            version=version,
            weight=float(order[name, version].get("weight") or 0.0),
            breakers=dict(breakers[name, version]),
            failed=failed[name, version],
            refused=refused[name, version],
        )
        for name, version in order
    ]
    return merged, workers
