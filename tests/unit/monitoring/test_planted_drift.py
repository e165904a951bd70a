"""Drift planted in simulated transactions, scored by a real model, found by the monitor on
the day it starts and not before, and named for what it is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring import (
    AlertManager,
    FileAlertSink,
    FrameRecordSource,
    Monitor,
    MonitoringStore,
    StaticReferences,
)
from simulated_world import World, make_world


@dataclass(frozen=True)
class Run:
    reports: list
    alerts: Path
    db: Path


@pytest.fixture(scope="module")
def inflation_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("inflation")
    reports, alerts = _run(make_world("inflation"), folder)
    return Run(reports, alerts, folder / "audit.db")


def _run(world: World, tmp_path: Path) -> tuple[list, Path]:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'audit.db'}")
    alerts_file = tmp_path / "alerts.jsonl"
    monitor = Monitor(
        FrameRecordSource(world.records),
        StaticReferences({("fraud", 1): world.reference}),
        store,
        MonitoringConfig(window_size="1D", lookback="30D"),
        alerts=AlertManager(store, [FileAlertSink(alerts_file)]),
    )
    end = world.records["ts"].max().ceil("1D")
    reports = monitor.run_once(end.to_pydatetime())
    store.dispose()
    return sorted(reports, key=lambda r: r.start), alerts_file


def _verdicts(reports: list, drift_start: pd.Timestamp) -> tuple[set[str], str, set[str]]:
    before = {r.verdict for r in reports if r.end <= drift_start}
    first = next(r.verdict for r in reports if r.start == drift_start)
    after = {r.verdict for r in reports if r.start >= drift_start}
    return before, first, after


def test_inflation_is_data_drift_from_its_first_day_and_not_before(
    inflation_world: World, tmp_path: Path
) -> None:
    reports, _alerts = _run(inflation_world, tmp_path)
    assert len(reports) == 14  # one per day, days 28..41
    before, first, after = _verdicts(reports, inflation_world.drift_start)
    assert before == {"no-drift"}
    assert first == "data-drift"
    assert after == {"data-drift"}
    day_one = next(r for r in reports if r.start == inflation_world.drift_start)
    assert "amount" in day_one.drifted_features
    assert "hour" not in day_one.drifted_features
    assert any("performance holds" in reason for reason in day_one.reasons)


def test_a_new_fraud_pattern_is_concept_drift_from_its_first_day(
    concept_world: World, tmp_path: Path
) -> None:
    reports, _ = _run(concept_world, tmp_path)
    before, first, after = _verdicts(reports, concept_world.drift_start)
    assert before == {"no-drift"}
    assert first == "concept-drift"
    assert after == {"concept-drift"}


def test_one_alert_per_incident_not_per_window(inflation_world: World, inflation_run: Run) -> None:
    sent = [json.loads(line) for line in inflation_run.alerts.read_text().splitlines()]
    assert len(sent) == 1  # seven drifted days, one open incident
    assert sent[0]["kind"] == "data-drift"
    assert sent[0]["window_start"].startswith(str(inflation_world.drift_start.date()))


def test_results_are_kept_as_a_time_series(inflation_world: World, inflation_run: Run) -> None:
    store = MonitoringStore(f"sqlite:///{inflation_run.db}")
    psi = store.series("fraud", "psi")
    amount = psi[psi["feature"] == "amount"].sort_values("window_end")
    assert len(amount) == 14
    ends = pd.to_datetime(amount["window_end"], utc=True)
    drifted = amount["drifted"].to_numpy()
    assert not drifted[(ends <= inflation_world.drift_start).to_numpy()].any()
    assert drifted[(ends > inflation_world.drift_start).to_numpy()].all()
    store.dispose()


@pytest.mark.parametrize("route", ["champion", "challenger"])
def test_each_traffic_arm_is_judged_on_its_own(
    inflation_world: World, tmp_path: Path, route: str
) -> None:
    records = inflation_world.records.copy()
    records["route"] = "champion"
    # the challenger arm only ever sees pre-drift traffic
    pre = records[records["ts"] < inflation_world.drift_start].copy()
    pre["route"] = "challenger"
    pre["prediction_id"] = "c" + pre["prediction_id"]
    world = World(pd.concat([records, pre]), inflation_world.reference, inflation_world.drift_start)
    reports, _ = _run(world, tmp_path)
    mine = [r for r in reports if r.route == route]
    verdicts = {r.verdict for r in mine}
    assert verdicts == ({"no-drift", "data-drift"} if route == "champion" else {"no-drift"})
