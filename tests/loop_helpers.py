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
