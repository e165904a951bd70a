"""The built-in analysis judges the challenger's arm by its answered share of the audit
log: a healthy arm passes its step, a failing one (or one whose breaker opened) rolls
back, and noise does neither."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import RolloutPlan
from driftloop.loop import AuditArmAnalysis, Verdict, arm_share
from driftloop.registry import TrafficStore
from loop_helpers import T0, Clock, served

CANARY = {"arms": {"champion": 80.0, "challenger": 20.0}}
World = tuple[SqliteAuditLog, TrafficStore, AuditArmAnalysis]
SHADOW = {"arms": {"champion": 100.0}, "shadow": "challenger", "shadow_sample": 0.5}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    traffic = TrafficStore.at(f"sqlite:///{tmp_path}/traffic.db")
    clock = Clock(T0 + timedelta(hours=1))
    plans = {"loans": RolloutPlan(min_sample=150, shadow_requests=300, max_error_rate=0.05)}
    yield log, traffic, AuditArmAnalysis(log, traffic, plans, clock=clock)
    log.close()
    traffic.close()


def judge(world: World, policy: dict[str, Any], failing: float, n: int = 1000) -> Verdict:
    log, traffic, analysis = world
    traffic.set("loans", policy, who="loop")
    served(log, policy, champion=1, challenger=2, n=n, at=T0, failing=failing)
    return analysis.judge("loans", 1, 2, T0 - timedelta(minutes=1))


def test_a_healthy_canary_arm_with_its_sample_passes_the_step(world: World) -> None:
    verdict = judge(world, CANARY, failing=0.0)
    assert verdict.action == "promote_step"
    assert verdict.numbers["stage"] == "canary"
    assert verdict.numbers["answered"] == 1000
    assert 150 <= verdict.numbers["challenger_rows"] <= 250


def test_a_failing_canary_arm_rolls_back_naming_its_error_rate(world: World) -> None:
    verdict = judge(world, CANARY, failing=0.5)
    assert verdict.action == "rollback"
    assert verdict.rule.startswith("error rate")
    assert 0.35 < verdict.numbers["error_rate"] < 0.65


def test_an_open_breaker_answering_nothing_rolls_back(world: World) -> None:
    assert judge(world, CANARY, failing=1.0).action == "rollback"


def test_too_few_rows_is_neither_a_pass_nor_a_rollback(world: World) -> None:
    verdict = judge(world, CANARY, failing=0.0, n=100)
    assert verdict.action == "continue"


def test_the_shadow_is_judged_on_its_copies(world: World) -> None:
    assert judge(world, SHADOW, failing=0.0).action == "promote_step"


def test_a_shadow_that_fails_rolls_back(world: World) -> None:
    assert judge(world, SHADOW, failing=0.6).action == "rollback"


def test_the_stage_and_share_come_from_the_traffic_policy() -> None:
    assert arm_share(CANARY, 2) == ("canary", 0.2)
    assert arm_share({"arms": {"1": 3, "2": 1}}, 2) == ("canary", 0.25)
    assert arm_share(SHADOW, 2) == ("shadow", 0.5)
    assert arm_share(None, 2) == ("none", 0.0)


def test_a_few_rows_or_the_first_seconds_after_a_change_never_roll_back(world: World) -> None:
    log, traffic, analysis = world
    traffic.set("loans", CANARY, who="loop")
    # requests routed by the old policy (all to the champion) right after the change
    served(log, None, champion=1, challenger=2, n=500, at=T0, failing=0.0)
    assert analysis.judge("loans", 1, 2, T0).action == "continue"  # all inside the settle
    served(log, None, champion=1, challenger=2, n=60, at=T0 + timedelta(seconds=5), seed=1)
    verdict = analysis.judge("loans", 1, 2, T0)
    assert verdict.numbers["expected_rows"] == 12.0  # 20% of 60: too few to judge
    assert verdict.action == "continue"
