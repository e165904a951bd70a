"""Shared helpers for loop tests: a settable clock, an analysis that answers what a test
scripts, and a retrainer that registers a real (small) model with a chosen gate report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop.core.config import LoopPolicy
from driftloop.loop import Decision, GateWindow, Lease, Rollout, Trained, Verdict
from driftloop.registry import Registry, Signature
from registry_helpers import toy_lightgbm

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PASSED = {"passed": True, "checks": [{"name": "baseline:roc_auc", "passed": True}]}
FAILED = {"passed": False, "checks": [{"name": "baseline:roc_auc", "passed": False}]}


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class ScriptedAnalysis:
    """Answers ``verdicts`` in turn (the last one again when they run out), recording
    each question."""

    verdicts: list[Verdict] = field(default_factory=lambda: [Verdict("promote_step", "ok")])
    asked: list[tuple[str, int, int, datetime]] = field(default_factory=list)

    def judge(self, model: str, champion: int, challenger: int, since: datetime) -> Verdict:
        self.asked.append((model, champion, challenger, since))
        return self.verdicts.pop(0) if len(self.verdicts) > 1 else self.verdicts[0]


@dataclass
class RegisteringRetrainer:
    registry: Registry
    gate_report: dict[str, Any] = field(default_factory=lambda: dict(PASSED))
    calls: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        self.calls.append((model, start, end))
        fitted, X = toy_lightgbm(seed=len(self.calls))
        mv = self.registry.register(
            model, fitted, signature=Signature.from_frame(X), gate_report=self.gate_report
        )
        return Trained(mv.version, self.gate_report)


def registry_with_champion(tmp_path: Path, model: str = "loans") -> Registry:
    registry = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "art"))
    fitted, X = toy_lightgbm()
    mv = registry.register(model, fitted, signature=Signature.from_frame(X))
    registry.set_alias(model, "champion", mv.version, who="ci", why="first model")
    return registry


def rollout(
    registry: Registry,
    policy: dict[str, Any] | LoopPolicy,
    clock: Clock,
    *,
    analysis: Any = None,
    retrainer: Any = None,
    windows: Callable[[str], list[dict[str, Any]]] = lambda m: [],
    holder: str = "ctl-a",
    model: str = "loans",
    decided: list[Decision] | None = None,
) -> Rollout:
    parsed = policy if isinstance(policy, LoopPolicy) else LoopPolicy.model_validate(policy)
    return Rollout(
        model,
        parsed,
        registry,
        Lease(registry, holder, timedelta(seconds=30), clock=clock),
        analysis or ScriptedAnalysis(),
        retrainer or RegisteringRetrainer(registry),
        clock,
        windows=windows,
        gate_window=GateWindow(),
        on_decision=(decided.append if decided is not None else lambda d: None),
    )


def drift_windows(version: int, counts: list[int], start: datetime = T0) -> list[dict[str, Any]]:
    """Stored monitoring windows of ``version``, one per count of drifted features."""
    import json

    return [
        {
            "version": version,
            "route": "v1",
            "window_end": start + timedelta(hours=i + 1),
            "summary": json.dumps({"drifted_features": [f"f{j}" for j in range(n)], "checks": []}),
        }
        for i, n in enumerate(counts)
    ]


def served(
    log: Any,
    traffic: dict[str, Any] | None,
    *,
    champion: int,
    challenger: int,
    n: int,
    at: datetime,
    failing: float = 0.0,
    seed: int = 0,
    model: str = "loans",
) -> None:
    """Write the audit rows a server would for ``n`` requests under the ``traffic``
    policy: each routed by the weights, the challenger's share failing ``failing`` of the
    time (the champion answers those), shadow copies under route ``shadow``. Features
    carry text, booleans and missing values."""
    import numpy as np

    from driftloop.audit import AuditRecord

    rng = np.random.default_rng(seed)
    arms = (traffic or {}).get("arms") or {"champion": 100.0}
    weight = float(arms.get("challenger", 0.0)) / sum(float(w) for w in arms.values())
    shadow = (traffic or {}).get("shadow") == "challenger"
    sample = float((traffic or {}).get("shadow_sample", 1.0))
    records = []
    for i in range(n):
        features = {
            "income": None if i % 17 == 0 else float(rng.lognormal(10, 0.4)),
            "channel": str(rng.choice(["web", "app", "branch"])),
            "owns_home": bool(rng.random() < 0.4),
        }
        picked = challenger if rng.random() < weight else champion
        if picked == challenger and rng.random() < failing:
            picked = champion  # the fallback chain's next link answers
        ts = at + timedelta(milliseconds=i)
        pid = f"{seed}-{i}"
        records.append(
            AuditRecord(pid, ts, model, str(picked), "v1", 0.3, "", 1.0, features=features)
        )
        if shadow and rng.random() < sample and rng.random() >= failing:
            records.append(
                AuditRecord(
                    f"{pid}:shadow", ts, model, str(challenger), "shadow", 0.4, "", 1.0,
                    features=features,
                )
            )  # fmt: skip
    log.write(records)


NO_SHADOW = {
    "triggers": {"drift_features": 0},
    "rollout": {"shadow_requests": 0, "shadow_time": "0s", "canary_steps": [10, 50],
                "dwell": "0s"},
}  # fmt: skip


def one_pass(url: str, artifacts: str, holder: str, barrier: Any, results: Any) -> None:
    """A controller process: wait for the others at ``barrier``, make one pass over a
    model with a retraining requested, put (holder, actions) on ``results``."""
    from driftloop.loop import LoopController

    registry = Registry.from_url(url, artifacts)
    controller = LoopController(
        registry,
        {"loans": LoopPolicy.model_validate(NO_SHADOW)},
        analysis=ScriptedAnalysis(),
        retrainer=RegisteringRetrainer(registry),
        holder=holder,
    )
    barrier.wait()
    try:
        results.put((holder, [d.action for d in controller.run_once()]))
    finally:
        registry.close()  # the lease is kept: the other must not take it after this pass


FAST_NO_SHADOW = {**NO_SHADOW, "cooldown": "0s"}
