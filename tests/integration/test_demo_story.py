"""The demo's story end to end, on small simulations: a binary (fraud) and a regression
(delivery times) model served by the real HTTP server on 127.0.0.1, monitored, and led by
the loop controller on a clock that follows simulated time.

The story is deterministic in simulated time (the clock is injected); the only wall-clock
waits are bounds on the server catching up, never asserted on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from driftloop.cli import _demo
from driftloop.cli import app as cli
from driftloop.cli._demo_report import daily_performance, daily_traffic
from driftloop.cli._demo_story import StoryPlan, StoryResult, run_story
from driftloop.data import StoryData, delivery_story, fraud_story
from driftloop.loop import Decision
from driftloop.registry import Registry
from driftloop.stats import METRICS, TASKS, Outputs, evaluate

pytestmark = pytest.mark.integration
DAYS, DRIFT_DAY = 30, 18
PLAN = StoryPlan(
    warmup_days=3,
    train_days=12,
    slices_per_day=4,
    rows_per_request=2,
    client_threads=3,
    broken_day=25,
    policy="""\
[loop.{model}]
cooldown = "2D"
lookback = "5D"
[loop.{model}.triggers]
drift_features = 2
drift_windows = 2
performance_windows = 1
[loop.{model}.rollout]
shadow_requests = 100
shadow_time = "1D"
canary_steps = [20, 50]
dwell = "6h"
min_sample = 60
max_error_rate = 0.2
""",
)


def small_fraud(seed: int = 7) -> StoryData:
    return fraud_story(customers=350, terminals=700, days=DAYS, drift_day=DRIFT_DAY, seed=seed)


def small_deliveries(seed: int = 7) -> StoryData:
    return delivery_story(rows_per_day=500, days=DAYS, drift_day=DRIFT_DAY, seed=seed)


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> StoryResult:
    return run_story(small_fraud(), tmp_path_factory.mktemp("fraud") / "demo", PLAN)


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> tuple[StoryResult, str]:
    """The regression story, told by ``driftloop demo --story regression`` (small)."""
    told: list[StoryResult] = []

    def keep(*args: Any, **kwargs: Any) -> StoryResult:
        told.append(run_story(*args, **kwargs))
        return told[-1]

    folder = tmp_path_factory.mktemp("deliveries") / "demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(_demo.STORIES, "regression", small_deliveries)
        patch.setattr(_demo, "PLAN", PLAN)
        patch.setattr(_demo, "run_story", keep)
        output = CliRunner().invoke(
            cli, ["demo", "--story", "regression", "--out", str(folder)], env={"COLUMNS": "200"}
        )
    assert output.exit_code == 0, output.output
    return told[0], output.output


def stories(request: pytest.FixtureRequest, name: str) -> StoryResult:
    value = request.getfixturevalue(name)
    return value[0] if isinstance(value, tuple) else value


BOTH = pytest.mark.parametrize("name", ["fraud", "deliveries"])


def day_of(result: StoryResult, decision: Decision) -> float:
    start = result.story.start.tz_localize("UTC").to_pydatetime()
    return (decision.at - start).total_seconds() / 86_400


def rollouts(result: StoryResult) -> dict[int, list[Decision]]:
    """Decisions about each challenger version, in order (a retraining or a request row
    names the last challenger, not the one it will make)."""
    out: dict[int, list[Decision]] = {}
    for d in result.decisions:
        if d.to_version is not None and d.action not in ("retrain", "request"):
            out.setdefault(d.to_version, []).append(d)
    return out


@BOTH
def test_drift_is_detected_after_it_starts_and_not_before(
    request: pytest.FixtureRequest, name: str
) -> None:
    result = stories(request, name)
    automatic = [d for d in result.decisions if d.action == "retrain" and d.rule[:6] != "manual"]
    assert automatic, "the loop never retrained on its own"
    first = automatic[0]
    assert DRIFT_DAY <= day_of(result, first) <= DRIFT_DAY + 3, first
    assert first.numbers["trigger"] in ("performance", "drift")
    assert all(day_of(result, d) >= DRIFT_DAY for d in result.decisions)
    # and monitoring saw nothing before the drift day on the first champion's answers
    before = [
        w
        for w in result.windows
        if int(w["version"]) == result.first_champion
        and str(w["route"]) != "shadow"
        and w["window_end"].timestamp() <= result.story.day(DRIFT_DAY).timestamp()
    ]
    assert before
    assert not any(_dropped(w) for w in before)


def _dropped(window: dict[str, Any]) -> bool:
    import json

    summary = window["summary"]
    summary = json.loads(summary) if isinstance(summary, str) else summary or {}
    return any(c.get("dropped") for c in summary.get("checks") or ())


@BOTH
def test_the_retrained_model_beats_the_stale_one_after_drift_and_passes_every_step(
    request: pytest.FixtureRequest, name: str
) -> None:
    result = stories(request, name)
    promoted = [d for d in result.decisions if d.action == "promote"]
    assert promoted
    new = promoted[0].to_version
    assert new is not None
    steps = [(d.action, d.step) for d in rollouts(result)[new]]
    assert steps == [
        ("trained", None),
        ("shadow", None),
        ("canary", 0),
        ("canary", 1),
        ("promote", None),
    ]
    story = result.story
    after = story.rows.loc[story.rows[story.timestamp] >= story.day(DRIFT_DAY)]
    registry = Registry.from_settings(result.settings)
    try:
        metric = TASKS[story.task].default_metric
        y = after[story.label].to_numpy(dtype=np.float64)
        values = {
            version: evaluate(
                Outputs(
                    story.task,
                    registry.load(story.model, version).predict_frame(after).raw,
                    ("0", "1") if story.task == "binary" else (),
                ),
                y,
            )[metric]
            for version in (result.first_champion, new)
        }
    finally:
        registry.close()
    assert METRICS[metric].better(values[new], values[result.first_champion]), values
    # the report draws the same: the new version answers after the promotion
    assert f"v{new} answered" in daily_traffic(result)
    assert all(math.isfinite(v) for _, v in daily_performance(result)[f"v{new}"])


@BOTH
def test_a_broken_challenger_is_rolled_back_before_full_traffic_with_no_failed_response(
    request: pytest.FixtureRequest, name: str
) -> None:
    result = stories(request, name)
    broken = result.broken_version
    assert broken is not None
    actions = [d.action for d in rollouts(result)[broken]]
    assert actions[-1] == "rollback", actions
    assert "promote" not in actions
    assert all(e.version != broken for e in result.alias_history if e.alias == "champion")
    assert result.answers.total > 1_000
    assert result.answers.failed == 0


@BOTH
def test_the_decision_log_matches_the_registry_alias_history(
    request: pytest.FixtureRequest, name: str
) -> None:
    result = stories(request, name)
    assert result.loop_moves()
    assert _demo.matches(result)


def test_the_command_prints_the_decision_log_and_writes_a_self_contained_report(
    deliveries: tuple[StoryResult, str],
) -> None:
    result, output = deliveries
    assert "Decision log" in output
    assert "failed (non-2xx): 0" in output
    assert "match its decisions: True" in output
    report = (result.folder / "report.html").read_text()
    assert report.count("<svg") >= 4
    assert "<script" not in report
    assert "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
