"""The controller's collaborators: promotions and rollbacks reach the alert sinks, and
the gate asks the challenger to beat the stale champion on the latest labelled rows."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import lightgbm as lgb

from driftloop.audit import AuditRecord, Label, SqliteAuditLog
from driftloop.core.config import LoopPolicy
from driftloop.core.errors import BackendUnavailableError
from driftloop.loop import (
    Decision,
    GateWindow,
    LoopController,
    Trained,
    Verdict,
    request_retrain,
)
from driftloop.monitoring import FileAlertSink
from driftloop.registry import Registry, Signature
from loop_helpers import (
    FAST_NO_SHADOW,
    PASSED,
    Clock,
    RegisteringRetrainer,
    ScriptedAnalysis,
    registry_with_champion,
    rollout,
)
from registry_helpers import toy_frame


def test_promotions_and_rollbacks_are_alerted_through_the_sinks(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    analysis = ScriptedAnalysis()
    controller = LoopController(
        registry,
        {"loans": LoopPolicy.model_validate(FAST_NO_SHADOW)},
        analysis=analysis,
        retrainer=RegisteringRetrainer(registry),
        holder="ctl",
        clock=clock,
        sinks=[FileAlertSink(tmp_path / "alerts.jsonl")],
    )
    request_retrain(registry, "loans", "first", who="ana", at=clock())
    assert controller.run_once()[-1].action == "promote"
    analysis.verdicts = [Verdict("rollback", "error rate: 30% > 5%")]
    clock.advance(minutes=1)
    request_retrain(registry, "loans", "second", who="ana", at=clock())
    assert controller.run_once()[-1].action == "rollback"
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["version"], a["route"]) for a in alerts] == [
        ("promoted", 2, "loop"),
        ("rolled-back", 3, "loop"),
    ]
    assert alerts[1]["message"] == "rolled-back v3: error rate: 30% > 5%"
    controller.close()


class Refit(RegisteringRetrainer):
    """Registers a model fitted on labels that are right, or shuffled (a worse model),
    pointing ``challenger`` at it as the training pipeline does when its gates pass."""

    shuffled: bool = False

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        X, y = toy_frame(n=2_000, seed=5)
        if self.shuffled:
            y = y.sample(frac=1.0, random_state=0).reset_index(drop=True)
        fitted = lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1).fit(X, y)
        mv = self.registry.register(
            model, fitted, signature=Signature.from_frame(X), gate_report=PASSED,
            alias="challenger", created_by="pipeline:loans",
        )  # fmt: skip
        return Trained(mv.version, PASSED)


def labelled_log(tmp_path: Path, clock: Clock) -> SqliteAuditLog:
    log = SqliteAuditLog(tmp_path / "audit.db")
    X, y = toy_frame(n=600, seed=9)
    at = clock() - timedelta(hours=2)
    log.write(
        [
            AuditRecord(
                f"p{i}",
                at + timedelta(seconds=i),
                "loans",
                "1",
                "v1",
                0.5,
                "",
                1.0,
                features={"amount": float(r.amount), "hour": float(r.hour)},
            )
            for i, r in enumerate(X.itertuples())
        ]
    )
    log.add_labels([Label(f"p{i}", float(v)) for i, v in enumerate(y)])
    return log


def gate_outcome(
    tmp_path: Path, shuffled: bool
) -> tuple[str, str, dict[str, object], dict[str, int]]:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    log = labelled_log(tmp_path, clock)
    retrainer = Refit(registry)
    retrainer.shuffled = shuffled
    request_retrain(registry, "loans", "go", who="ana", at=clock())
    r = rollout(registry, {"rollout": {"shadow_requests": 10}}, clock, retrainer=retrainer)
    r.audit, r.gate_window = log, GateWindow(timedelta(days=1), min_labelled=100)
    decisions = [r.advance() for _ in range(3)]
    log.close()
    last = decisions[-1]
    assert last is not None
    return last.action, last.rule, dict(last.numbers["recent_window"]), registry.aliases("loans")


def test_a_challenger_worse_on_the_latest_labelled_rows_is_rejected(tmp_path: Path) -> None:
    action, rule, seen, aliases = gate_outcome(tmp_path, shuffled=True)
    assert action == "reject"
    assert aliases == {"champion": 1}  # the pipeline's challenger alias is taken back
    assert "does not beat the stale champion" in rule
    assert seen["labelled"] == 600
    assert float(seen["challenger"]) < float(seen["champion"])  # type: ignore[arg-type]


def test_a_challenger_better_on_the_latest_labelled_rows_goes_to_shadow(tmp_path: Path) -> None:
    action, _, seen, aliases = gate_outcome(tmp_path, shuffled=False)
    assert action == "shadow"
    assert aliases == {"champion": 1, "challenger": 2}
    assert seen["metric"] == "roc_auc"


def test_the_gate_needs_enough_labelled_rows_to_judge(tmp_path: Path) -> None:
    registry: Registry = registry_with_champion(tmp_path)
    clock = Clock()
    log = SqliteAuditLog(tmp_path / "audit.db")
    request_retrain(registry, "loans", "go", who="ana", at=clock())
    r = rollout(registry, {"rollout": {"shadow_requests": 10}}, clock, retrainer=Refit(registry))
    r.audit = log
    decisions = [r.advance() for _ in range(3)]
    log.close()
    assert decisions[-1] is not None
    assert decisions[-1].action == "shadow"  # the release gates' own comparison stands
    assert decisions[-1].numbers["recent_window"]["note"] == "fewer than 100 labelled rows"


def test_run_makes_passes_until_stopped_and_survives_an_unreachable_database(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    controller = LoopController(
        registry,
        {"loans": LoopPolicy.model_validate(FAST_NO_SHADOW)},
        analysis=ScriptedAnalysis(),
        retrainer=RegisteringRetrainer(registry),
        holder="ctl",
        clock=clock,
    )
    request_retrain(registry, "loans", "go", who="ana", at=clock())
    stop, passes = threading.Event(), []
    real_pass = controller.run_once

    def flaky_pass() -> list[Decision]:
        if not passes:
            passes.append("failed")
            raise BackendUnavailableError("registry database is down")
        if len(passes) == 1:
            passes.append("bug")
            raise KeyError(2)  # a bug in one pass (an analysis once raised this) is logged
        return real_pass()

    def after(decisions: list[Decision]) -> None:
        passes.append([d.action for d in decisions])
        stop.set()

    controller.run_once = flaky_pass  # type: ignore[method-assign]
    controller.run(0.0, stop=stop, on_pass=after)
    assert passes == ["failed", "bug", ["retrain", "trained", "canary", "canary", "promote"]]
    controller.close()
