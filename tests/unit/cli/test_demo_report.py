"""The demo's report and its check of the decision log against the alias history, on a
hand-made story result (no server, no training)."""

from __future__ import annotations

import re
import xml.dom.minidom
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.cli._demo import matches
from driftloop.cli._demo_report import daily_performance, daily_traffic, write_story_report
from driftloop.cli._demo_server import Answers
from driftloop.cli._demo_story import StoryResult
from driftloop.core.config import load_settings
from driftloop.data import delivery_story
from driftloop.loop import Decision
from driftloop.registry import AliasEvent

START = datetime(2025, 1, 1, tzinfo=UTC)


def at(day: float) -> datetime:
    return START + timedelta(days=day)


def decision(day: float, action: str, state: str, to: int | None, **numbers: object) -> Decision:
    return Decision(at(day), "deliveries", state, action, f"rule of {action}", "demo", 1, to,
                    numbers=numbers)  # fmt: skip


def move(day: float, alias: str, version: int | None, who: str = "loop") -> AliasEvent:
    return AliasEvent("deliveries", alias, version, None, at(day), who, "why")


def audit_rows() -> pd.DataFrame:
    """Day 0: 40 rows of v1 (exact), day 1: 40 of v1 off by 2 and 40 shadow copies of v2
    off by 1."""
    rng = np.random.default_rng(0)
    y = rng.normal(30, 5, size=40)
    parts = [
        (0.2, "1", "v1", y, y),
        (1.2, "1", "v1", y + 2.0, y),
        (1.3, "2", "shadow", y + 1.0, y),
    ]
    frames = [
        pd.DataFrame({"ts": at(day), "version": version, "route": route, "score": s, "label": t})
        for day, version, route, s, t in parts
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def result(tmp_path: Path) -> StoryResult:
    story = delivery_story(rows_per_day=10, days=4, drift_day=2)
    decisions = [
        decision(1.0, "retrain", "retraining", None, trigger="performance"),
        decision(1.0, "trained", "gated", 2),
        decision(1.0, "shadow", "shadow", 2),
        decision(1.5, "canary", "canary", 2),
        decision(2.0, "promote", "promoted", 2),
        decision(3.0, "rollback", "rolled_back", 3, stage="shadow", challenger_rows=0,
                 expected_rows=50.0),
    ]  # fmt: skip
    history = [
        move(0.0, "champion", 1, who="demo"),
        move(1.0, "challenger", 2, who="pipeline:deliveries"),
        move(1.0, "challenger", 2),
        move(2.0, "champion", 2),
        move(2.0, "challenger", None),
        move(3.0, "challenger", 3),
        move(3.0, "challenger", None),
    ]
    decisions.insert(5, decision(3.0, "shadow", "shadow", 3))
    return StoryResult(
        story=story,
        folder=tmp_path,
        settings=load_settings(root=tmp_path, environ={}),
        first_champion=1,
        decisions=decisions,
        alias_history=history,
        answers=Answers(),
        windows=[],
        broken_version=3,
        audit_rows=audit_rows(),
    )


def test_the_decision_log_matches_the_loops_alias_moves(result: StoryResult) -> None:
    assert matches(result)


def test_a_missing_alias_move_is_a_mismatch(result: StoryResult) -> None:
    assert not matches(replace(result, alias_history=result.alias_history[:-1]))


def test_realized_performance_is_computed_per_day_and_arm(result: StoryResult) -> None:
    performance = daily_performance(result)
    assert performance["v1"] == [(0.0, pytest.approx(0.0)), (1.0, pytest.approx(2.0))]
    assert performance["v2 shadow"] == [(1.0, pytest.approx(1.0))]


def test_traffic_counts_each_arms_rows_per_day(result: StoryResult) -> None:
    assert daily_traffic(result) == {
        "v1 answered": {0: 40.0, 1: 40.0},
        "v2 shadow copies": {1: 40.0},
    }


def test_the_report_is_one_file_of_well_formed_svg_without_scripts(
    result: StoryResult, tmp_path: Path
) -> None:
    html = write_story_report(result, tmp_path / "report.html").read_text()
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 4
    for chart in charts:
        xml.dom.minidom.parseString(chart)
    assert "<script" not in html
    assert "v3 rolled back on day 3.00: rule of rollback" in html
