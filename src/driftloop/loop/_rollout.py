"""One model's rollout as a persisted state machine (docs/loop.md):

    idle ──trigger──▶ retraining ──▶ gated ──▶ shadow ──▶ canary 0 ▶ … ▶ canary k ──▶ promoted
                          │            │          │             │
                          └────────────┴──────────┴─────────────┴──▶ rolled_back

:meth:`Rollout.advance` makes at most one transition. Each is one transaction holding
the alias moves (``challenger``/``champion``, by ``who="loop"`` with the rule as the
reason), the traffic policy, the lease renewal and the decision row, so the state read
back after a crash is always one whose changes all committed. Nothing here calls a
server: serving follows the aliases and the traffic policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from driftloop.audit import AuditLog
from driftloop.core.config import LoopPolicy, RolloutPlan
from driftloop.core.errors import ConflictError
from driftloop.loop._analysis import Analysis, Verdict
from driftloop.loop._decisions import Decision, RolloutState, record, rollout_state
from driftloop.loop._lease import Lease
from driftloop.loop._retrain import Retrainer, beats_champion
from driftloop.loop._triggers import due_trigger
from driftloop.registry import Registry, Release

__all__ = ["GateWindow", "Rollout"]

log = logging.getLogger("driftloop.loop")

ALIAS_WHO = "loop"
Change = Callable[[Release], None]


@dataclass(frozen=True)
class GateWindow:
    """The most recent labelled window the challenger must win on: its length, the
    labelled rows it needs, and the binary decision threshold."""

    length: timedelta = timedelta(days=1)
    min_labelled: int = 100
    threshold: float = 0.5


@dataclass
class Rollout:
    """The rollout of ``model`` under ``policy``, acting as the holder of ``lease``."""

    model: str
    policy: LoopPolicy
    registry: Registry
    lease: Lease
    analysis: Analysis
    retrainer: Retrainer
    clock: Callable[[], datetime]
    windows: Callable[[str], Sequence[Mapping[str, Any]]] = lambda model: []
    audit: AuditLog | None = None  # the gate's labelled window (None: the gate report only)
    gate_window: GateWindow = field(default_factory=GateWindow)
    sticky_key: str | None = None
    on_decision: Callable[[Decision], None] = lambda decision: None

    @property
    def plan(self) -> RolloutPlan:
        return self.policy.rollout

    def state(self) -> RolloutState:
        return rollout_state(self.registry.engine, self.model)

    # -- writing a transition ---------------------------------------------------------
    def _commit(
        self,
        base: RolloutState,
        state: str,
        action: str,
        rule: str,
        numbers: Mapping[str, Any],
        *,
        step: int | None = None,
        champion: int | None = None,
        challenger: int | None = None,
        change: Change | None = None,
    ) -> Decision:
        now = self.clock()
        decision = Decision(
            at=now,
            model=self.model,
            state=state,
            action=action,
            rule=rule,
            who=self.lease.holder,
            from_version=champion if champion is not None else base.champion,
            to_version=challenger if challenger is not None else base.challenger,
            step=step,
            numbers=dict(numbers),
        )
        with self.registry.release() as release:
            self.lease.hold(release.conn, self.model)
            seen = rollout_state(release.conn, self.model)
            if (seen.state, seen.step, seen.since, seen.failed) != (
                base.state, base.step, base.since, base.failed
            ):  # fmt: skip
                raise ConflictError(
                    f"The rollout of model '{self.model}' moved to {seen.state} while "
                    f"'{self.lease.holder}' decided from {base.state}; nothing was changed."
                )
            if change is not None:
                change(release)
            decision = replace(decision, id=record(release.conn, decision))
        self.on_decision(decision)
        return decision

    def _traffic(self, policy: dict[str, Any] | None, why: str) -> Change:
        def change(release: Release) -> None:
            if policy is not None and self.sticky_key:
                policy["sticky_key"] = self.sticky_key
            release.set_traffic(self.model, policy, who=ALIAS_WHO, why=why)

        return change

    def _end(self, base: RolloutState, state: str, action: str, verdict: Verdict) -> Decision:
        """Promote or roll back: aliases and traffic back to a rest."""
        at, challenger = self.clock(), base.challenger
        assert challenger is not None

        def change(release: Release) -> None:
            if state == "promoted":
                release.set_alias(
                    self.model, "champion", challenger, who=ALIAS_WHO, why=verdict.rule, at=at
                )
            release.remove_alias(self.model, "challenger", who=ALIAS_WHO, why=verdict.rule, at=at)
            self._traffic(None, verdict.rule)(release)

        return self._commit(base, state, action, verdict.rule, verdict.numbers, change=change)

    # -- the machine ------------------------------------------------------------------
    def advance(self) -> Decision | None:
        """Make the transition the current state calls for now, if any."""
        base = self.state()
        if base.resting:
            return self._at_rest(base)
        if base.state == "retraining":
            return self._retrain(base)
        if base.state == "gated":
            return self._gate(base)
        return self._check(base)

    def _at_rest(self, base: RolloutState) -> Decision | None:
        champion = self.registry.aliases(self.model).get("champion")
        if champion is None:
            return None  # nothing serves yet: ``driftloop train --promote`` comes first
        created = self.registry.get(self.model, champion).created_at
        now = self.clock()
        trigger = due_trigger(
            self.policy,
            base,
            windows=self.windows(self.model),
            champion=champion,
            champion_since=created,
            now=now,
        )
        if trigger is None:
            return None
        numbers = {
            "trigger": trigger.kind,
            **trigger.numbers,
            "train_start": (now - self.policy.lookback).isoformat(),
            "train_end": now.isoformat(),
        }
        return self._commit(base, "retraining", "retrain", trigger.rule, numbers, champion=champion)

    def _retrain(self, base: RolloutState) -> Decision:
        assert base.since is not None
        start, end = base.since - self.policy.lookback, base.since  # the same after a crash
        try:
            trained = self.retrainer.retrain(self.model, start, end)
        except Exception as exc:  # a training that fails would fail again at every pass
            log.exception("retraining %s failed", self.model)
            rule = f"retraining failed: {type(exc).__name__}: {exc}"
            return self._commit(base, "rolled_back", "retrain-failed", rule, {})
        if trained.version is None:
            rule = "retraining registered no version"
            return self._commit(base, "rolled_back", "retrain-failed", rule, {})
        if trained.version == base.champion:
            rule = (
                f"retraining found the champion (version {trained.version}) again: its data "
                "and settings are unchanged, so there is nothing to roll out"
            )
            return self._commit(base, "idle", "unchanged", rule, {"version": trained.version})
        numbers = {
            "gates_passed": bool(trained.gate_report.get("passed")),
            "failed_gates": [
                c["name"] for c in trained.gate_report.get("checks", []) if not c.get("passed")
            ],
            "metrics": dict(trained.metrics),
        }
        rule = f"retrained on [{start.isoformat()}, {end.isoformat()})"
        return self._commit(base, "gated", "trained", rule, numbers, challenger=trained.version)

    def _gate(self, base: RolloutState) -> Decision:
        challenger = base.challenger
        assert challenger is not None
        report = self.registry.get(self.model, challenger).gate_report or {}
        failed = [c["name"] for c in report.get("checks", []) if not c.get("passed")]
        if not report.get("passed"):
            rule = f"release gates: failed {', '.join(failed) or 'without a report'}"
            return self._reject(base, rule, {"failed_gates": failed})
        numbers: dict[str, Any] = {"gates_passed": True}
        if self.audit is not None and base.champion:
            beats, seen = beats_champion(
                self.registry,
                self.audit,
                self.model,
                champion=base.champion,
                challenger=challenger,
                now=self.clock(),
                window=self.gate_window.length,
                min_labelled=self.gate_window.min_labelled,
                threshold=self.gate_window.threshold,
            )
            numbers["recent_window"] = seen
            if beats is False:
                rule = (
                    "recent labelled window: the challenger does not beat the stale champion "
                    f"({seen['metric']} {seen['challenger']:.4f} vs {seen['champion']:.4f})"
                )
                return self._reject(base, rule, numbers)
        return self._first_stage(base, numbers)

    def _reject(self, base: RolloutState, rule: str, numbers: Mapping[str, Any]) -> Decision:
        """No traffic for the new version; the ``challenger`` alias the training pipeline
        points at a version that passed its gates is taken back from it."""
        at, challenger = self.clock(), base.challenger

        def change(release: Release) -> None:
            if challenger is not None and release.current(self.model, "challenger") == challenger:
                release.remove_alias(self.model, "challenger", who=ALIAS_WHO, why=rule, at=at)

        return self._commit(base, "rolled_back", "reject", rule, numbers, change=change)

    def _first_stage(self, base: RolloutState, numbers: dict[str, Any]) -> Decision:
        plan, challenger, at = self.plan, base.challenger, self.clock()
        assert challenger is not None
        shadowing = plan.shadow_requests > 0 or plan.shadow_time > timedelta(0)
        if not shadowing:
            return self._canary(base, 0, "gates passed; no shadow in the plan", numbers)
        rule = "release gates passed and the challenger beats the champion: shadow"
        policy = {
            "arms": {"champion": 100.0},
            "shadow": "challenger",
            "shadow_sample": plan.shadow_sample,
        }

        def change(release: Release) -> None:
            release.set_alias(self.model, "challenger", challenger, who=ALIAS_WHO, why=rule, at=at)
            self._traffic(policy, rule)(release)

        return self._commit(base, "shadow", "shadow", rule, numbers, change=change)

    def _canary(
        self, base: RolloutState, step: int, rule: str, numbers: Mapping[str, Any]
    ) -> Decision:
        steps, challenger, at = self.plan.canary_steps, base.challenger, self.clock()
        assert challenger is not None
        if step >= len(steps):
            return self._end(base, "promoted", "promote", Verdict("promote_step", rule, numbers))
        weight = float(steps[step])
        policy = {"arms": {"champion": 100.0 - weight, "challenger": weight}}
        why = f"{rule}; canary {weight:g}%"

        def change(release: Release) -> None:
            if release.current(self.model, "challenger") != challenger:
                release.set_alias(
                    self.model, "challenger", challenger, who=ALIAS_WHO, why=why, at=at
                )
            self._traffic(policy, why)(release)

        return self._commit(base, "canary", "canary", why, numbers, step=step, change=change)

    def _check(self, base: RolloutState) -> Decision | None:
        assert base.since is not None
        assert base.challenger is not None
        verdict = self.analysis.judge(self.model, base.champion or 0, base.challenger, base.since)
        if verdict.action == "rollback":
            if base.failed + 1 >= self.plan.threshold:
                return self._end(base, "rolled_back", "rollback", verdict)
            numbers = {**verdict.numbers, "failed_checks": base.failed + 1}
            return self._commit(
                base, base.state, "check-failed", verdict.rule, numbers, step=base.step
            )
        elapsed = self.clock() - base.since
        if base.state == "shadow":
            plan = self.plan
            by_sample = plan.shadow_requests > 0 and verdict.action == "promote_step"
            by_time = plan.shadow_time > timedelta(0) and elapsed >= plan.shadow_time
            if by_sample or by_time:
                why = "shadow passed: " + (verdict.rule if by_sample else f"{elapsed} elapsed")
                return self._canary(base, 0, why, verdict.numbers)
            return None
        if verdict.action == "promote_step" and elapsed >= self.plan.dwell:
            step = (base.step or 0) + 1
            return self._canary(base, step, f"step passed: {verdict.rule}", verdict.numbers)
        return None
