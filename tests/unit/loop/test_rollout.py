"""The rollout state machine, transition by transition, on an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from driftloop.loop import Decision, Trained, Verdict, history, request_retrain, rollout_state
from loop_helpers import (
    FAILED,
    PASSED,
    Clock,
    RegisteringRetrainer,
    ScriptedAnalysis,
    drift_windows,
    registry_with_champion,
    rollout,
)

FAST = {
    "cooldown": "1h",
    "triggers": {"drift_features": 2, "drift_windows": 2},
    "rollout": {"shadow_requests": 100, "shadow_time": "2h", "canary_steps": [10, 50],
                "dwell": "10m"},
}  # fmt: skip


def drive(r, clock: Clock, minutes: float = 11, passes: int = 20) -> list[Decision]:
    out = []
    for _ in range(passes):
        decision = r.advance()
        if decision is None:
            clock.advance(minutes=minutes)
            continue
        out.append(decision)
        if decision.state in ("promoted", "rolled_back"):
            break
    return out


def test_drift_in_consecutive_windows_retrains_and_the_challenger_goes_all_the_way(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    clock.advance(hours=3)
    decided: list[Decision] = []
    r = rollout(
        registry, FAST, clock, windows=lambda m: drift_windows(1, [0, 2, 3]), decided=decided
    )
    decisions = drive(r, clock)
    assert [(d.action, d.state, d.step) for d in decisions] == [
        ("retrain", "retraining", None),
        ("trained", "gated", None),
        ("shadow", "shadow", None),
        ("canary", "canary", 0),
        ("canary", "canary", 1),
        ("promote", "promoted", None),
    ]
    assert decisions[0].numbers["drifted_per_window"] == [2, 3]
    assert decided == decisions
    assert registry.aliases("loans") == {"champion": 2}
    assert registry.traffic.get("loans").policy is None  # back to the settings file's
    policies = [s.policy for s in reversed(registry.traffic.history("loans"))]
    assert policies[:3] == [
        {"arms": {"champion": 100.0}, "shadow": "challenger", "shadow_sample": 1.0},
        {"arms": {"champion": 90.0, "challenger": 10.0}},
        {"arms": {"champion": 50.0, "challenger": 50.0}},
    ]
    assert all(d.from_version == 1 for d in decisions)
    assert [d.to_version for d in decisions] == [None, 2, 2, 2, 2, 2]


def test_drift_below_k_features_or_for_fewer_than_n_windows_does_not_retrain(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    for counts in ([1, 1, 1], [0, 0, 5], [3]):
        r = rollout(registry, FAST, clock, windows=lambda m, c=counts: drift_windows(1, c))
        assert r.advance() is None
    assert rollout_state(registry.engine, "loans").state == "idle"


def test_windows_of_other_versions_and_before_the_last_retraining_do_not_count(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    clock.advance(hours=3)
    r = rollout(registry, FAST, clock, windows=lambda m: drift_windows(7, [3, 3]))
    assert r.advance() is None  # version 7 is not the champion


def test_failed_release_gates_reject_the_challenger_and_leave_aliases_alone(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "new data arrived", who="ana", at=clock())
    r = rollout(registry, FAST, clock, retrainer=RegisteringRetrainer(registry, FAILED))
    decisions = drive(r, clock)
    assert [d.action for d in decisions] == ["retrain", "trained", "reject"]
    assert decisions[0].rule == "manual: new data arrived"
    assert "baseline:roc_auc" in decisions[-1].rule
    assert registry.aliases("loans") == {"champion": 1}
    assert registry.traffic.get("loans") is None


def test_a_rollback_verdict_rolls_back_at_once_and_restores_traffic(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "try", who="ana", at=clock())
    analysis = ScriptedAnalysis(
        [Verdict("promote_step", "fine"), Verdict("rollback", "error rate: 40% > 5%",
                                                  {"error_rate": 0.4})]
    )  # fmt: skip
    decisions = drive(rollout(registry, FAST, clock, analysis=analysis), clock)
    assert [(d.action, d.state) for d in decisions][-2:] == [
        ("canary", "canary"),
        ("rollback", "rolled_back"),
    ]
    assert decisions[-1].numbers == {"error_rate": 0.4}
    assert decisions[-1].rule == "error rate: 40% > 5%"
    assert registry.aliases("loans") == {"champion": 1}
    assert registry.traffic.get("loans").policy is None
    removed = registry.history("loans", "challenger")[-1]
    assert (removed.version, removed.who, removed.why) == (None, "loop", "error rate: 40% > 5%")


def test_threshold_failed_checks_in_a_step_before_rolling_back(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "try", who="ana", at=clock())
    policy = {**FAST, "rollout": {**FAST["rollout"], "shadow_requests": 0, "shadow_time": "0s",
                                   "threshold": 3}}  # fmt: skip
    analysis = ScriptedAnalysis([Verdict("rollback", "breaker open")])
    decisions = drive(rollout(registry, policy, clock, analysis=analysis), clock)
    assert [d.action for d in decisions] == [
        "retrain", "trained", "canary", "check-failed", "check-failed", "rollback"
    ]  # fmt: skip
    assert [d.numbers.get("failed_checks") for d in decisions[3:5]] == [1, 2]


def test_a_step_passes_only_after_its_dwell(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "try", who="ana", at=clock())
    policy = {**FAST, "rollout": {**FAST["rollout"], "shadow_requests": 0, "shadow_time": "0s"}}
    r = rollout(registry, policy, clock)
    assert [r.advance().action for _ in range(3)] == ["retrain", "trained", "canary"]
    clock.advance(minutes=9)
    assert r.advance() is None  # the sample is there, the dwell (10 min) is not
    clock.advance(minutes=1)
    assert r.advance().step == 1


def test_shadow_ends_by_time_when_the_sample_never_comes(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "try", who="ana", at=clock())
    r = rollout(registry, FAST, clock, analysis=ScriptedAnalysis([Verdict("continue", "few")]))
    assert [r.advance().action for _ in range(3)] == ["retrain", "trained", "shadow"]
    clock.advance(minutes=119)
    assert r.advance() is None
    clock.advance(minutes=1)
    assert r.advance().state == "canary"


def test_cooldown_holds_back_triggers_but_not_a_manual_request(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    clock.advance(hours=3)
    windows = drift_windows(1, [3, 3])
    r = rollout(registry, FAST, clock, analysis=ScriptedAnalysis([Verdict("rollback", "bad")]))
    r.windows = lambda m: windows
    assert drive(r, clock)[-1].state == "rolled_back"
    windows += drift_windows(1, [3, 3], start=clock.now)  # new drift, inside the cool-down
    clock.advance(minutes=5)
    assert r.advance() is None
    request_retrain(registry, "loans", "on call says so", who="bo", at=clock())
    assert r.advance().rule == "manual: on call says so"


def test_schedule_and_performance_triggers(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    policy = {"triggers": {"drift_features": 0, "schedule": "7D"}}
    r = rollout(registry, policy, clock)
    created = registry.get("loans", 1).created_at
    clock.now = created
    assert r.advance() is None
    clock.now = created + timedelta(days=7)
    assert r.advance().numbers["trigger"] == "schedule"

    (tmp_path / "b").mkdir()
    other = registry_with_champion(tmp_path / "b")
    windows = drift_windows(1, [0, 0])
    windows[-1]["summary"] = (
        '{"drifted_features": [], "checks": [{"metric": "roc_auc", "dropped": true}]}'
    )
    r2 = rollout(other, {"triggers": {"drift_features": 0}}, clock, windows=lambda m: windows)
    assert r2.advance().numbers["trigger"] == "performance"


def test_a_new_controller_resumes_the_state_the_log_holds(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "try", who="ana", at=clock())
    first = rollout(registry, FAST, clock)
    for _ in range(4):
        first.advance()
    state = rollout_state(registry.engine, "loans")
    assert (state.state, state.step, state.challenger) == ("canary", 0, 2)
    clock.advance(seconds=31)  # the first one's lease expired: it is gone
    second = rollout(registry, FAST, clock, holder="ctl-b")
    assert second.state() == state
    decisions = drive(second, clock)
    assert [(d.action, d.step) for d in decisions] == [("canary", 1), ("promote", None)]
    assert {d.who for d in decisions} == {"ctl-b"}


def test_the_decision_log_matches_the_registrys_alias_history(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    for analysis in (ScriptedAnalysis(), ScriptedAnalysis([Verdict("rollback", "bad")])):
        request_retrain(registry, "loans", "again", who="ana", at=clock())
        drive(rollout(registry, FAST, clock, analysis=analysis), clock)
        clock.advance(hours=2)
    moves = [(e.alias, e.version) for e in registry.history("loans") if e.who == "loop"]
    logged = []
    for d in history(registry.engine, "loans"):
        if d.action == "shadow":
            logged.append(("challenger", d.to_version))
        elif d.action == "promote":
            logged += [("champion", d.to_version), ("challenger", None)]
        elif d.action == "rollback":
            logged.append(("challenger", None))
    assert moves == logged == [
        ("challenger", 2), ("champion", 2), ("challenger", None),
        ("challenger", 3), ("challenger", None),
    ]  # fmt: skip


def test_a_retraining_request_needs_a_reason_and_a_known_model(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    with pytest.raises(ValueError, match="needs a reason"):
        request_retrain(registry, "loans", "  ", who="ana")
    with pytest.raises(LookupError, match="No model named 'nope'"):
        request_retrain(registry, "nope", "why", who="ana")


def test_a_retraining_that_finds_the_champion_again_rolls_nothing_out(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "nothing new", who="ana", at=clock())

    class SameAgain(RegisteringRetrainer):
        def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
            return Trained(1, PASSED)

    decisions = drive(rollout(registry, FAST, clock, retrainer=SameAgain(registry)), clock)
    assert [(d.action, d.state) for d in decisions] == [
        ("retrain", "retraining"), ("unchanged", "idle")
    ]  # fmt: skip
    assert registry.aliases("loans") == {"champion": 1}
    assert rollout(registry, FAST, clock).advance() is None  # the request was served


def test_a_retraining_that_raises_rolls_back_instead_of_retrying_forever(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "go", who="ana", at=clock())

    class Broken(RegisteringRetrainer):
        def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
            raise ValueError("Input contains NaN")

    decisions = drive(rollout(registry, FAST, clock, retrainer=Broken(registry)), clock)
    assert [(d.action, d.state) for d in decisions] == [
        ("retrain", "retraining"), ("retrain-failed", "rolled_back")
    ]  # fmt: skip
    assert decisions[-1].rule == "retraining failed: ValueError: Input contains NaN"
