"""Monitoring a served model from a clean project, with no hand-made files.

Simulated transactions with a new fraud pattern from day 63 (concept drift); a model
trained and registered by the training pipeline on days 35..55; the model served
in-process (registry model source, SQLite audit log) and days 56..69 replayed through
``/v1/models/fraud/predict``, labels sent through ``/v1/feedback``; then
``driftloop monitor run --once`` reads the audit log and the registry, and ``driftloop
monitor report`` writes the page. Everything runs in this process; no network.

Historical traffic and event time: the server stamps each audit record with the wall
clock when it answers (serving has no event-time option). To replay days of traffic in
seconds, the server is handed an audit log that delegates to the project's log and
stamps each record with the event time of its transaction, found by the ``tx_id``
entity key that every replayed instance carries (see docs/monitoring.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from driftloop.audit import AuditLog, AuditRecord, Label, open_audit_log
from driftloop.cli import app as cli
from driftloop.core.config import ModelConfig, Settings, load_settings
from driftloop.data import simulate_transactions
from driftloop.monitoring import MonitoringStore, RegistryReferences
from driftloop.registry import Registry
from driftloop.serving import RegistryModelSource, ServedModel, create_app
from driftloop.training import train_and_promote, training_source
from fraud_rows import load_rows, transaction_features

DAYS, DRIFT_DAY, TRAIN_END, WARM_UP = 70, 63, 56, 35
CHUNK = 1_000  # serving.max_instances
runner = CliRunner()


class EventTimeAuditLog:
    """The project's audit log, with each written record stamped with the event time of
    its transaction (by the ``tx_id`` entity key) instead of the wall clock."""

    def __init__(self, log: AuditLog, event_times: dict[str, datetime]) -> None:
        self.log = log
        self.event_times = event_times

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.log.write(
            [replace(r, ts=self.event_times[str(r.entity_keys["tx_id"])]) for r in records]
        )

    def add_labels(self, labels: Iterable[Label]) -> list[str]:
        return self.log.add_labels(labels)

    def get(self, prediction_id: str) -> AuditRecord:
        return self.log.get(prediction_id)

    def window(self, start: datetime, end: datetime, **kw: Any) -> pd.DataFrame:
        return self.log.window(start, end, **kw)

    def by_entity(self, name: str, value: Any, **kw: Any) -> pd.DataFrame:
        return self.log.by_entity(name, value, **kw)

    def compact(self, before: datetime) -> list[Path]:
        return self.log.compact(before)

    def close(self) -> None:
        self.log.close()


def _rows(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per-row transaction features over the whole history (computed in the test), and
    the features the model takes: all but ``is_weekend`` (constant within a daily
    window, so it would "drift" every Saturday)."""
    tx, customers = load_rows(folder)
    frame, features = transaction_features(tx, customers, "is_fraud", "tx_datetime")
    frame["label_known_at"] = tx["label_known_at"].to_numpy()
    return frame, [f for f in features if f != "is_weekend"]


@dataclass(frozen=True)
class Project:
    root: Path
    settings: Settings
    start: pd.Timestamp  # day 0, UTC
    before_labels: list[dict[str, Any]]  # stored windows after a run without feedback
    windows: list[dict[str, Any]]  # stored windows after feedback and a second run
    outputs: tuple[str, str]

    def day(self, n: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=n)


def _monitor(root: Path, now: pd.Timestamp) -> str:
    result = runner.invoke(
        cli,
        ["monitor", "run", "--once", "--now", now.strftime("%Y-%m-%dT%H:%M:%S")],
        env={"DRIFTLOOP_CONFIG": str(root / "driftloop.toml"), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    return result.output


def _windows(settings: Settings) -> list[dict[str, Any]]:
    store = MonitoringStore(settings.audit.url, root=settings.root)
    try:
        return store.window_rows("fraud")
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("served")
    (root / "driftloop.toml").write_text(
        # Small data: loose fairness and calibration gates; latency measured on a loaded
        # machine must not fail the run.
        "[gates]\nmax_equal_opportunity_difference = 1.0\nmax_ece = 0.5\n"
        'max_latency_ms = 10000.0\n[monitoring]\nlookback = "30D"\n'
        f'alerts = ["file:{root / "alerts.jsonl"}"]\n'
    )
    sim = simulate_transactions(
        customers=1_500, terminals=1_500, days=DAYS, drift_at=DRIFT_DAY, drift=("concept",), seed=11
    )
    sim.write(root / "data")
    start = pd.Timestamp(sim.scenario.start_date)
    settings = load_settings(root=root, environ={})
    frame, features = _rows(root / "data")
    config = ModelConfig(
        label="is_fraud",
        timestamp="tx_datetime",
        id="tx_id",
        include=tuple(features),
        segment="segment",
        task="binary",
    )
    # Rows whose 28-day terminal history is still filling (the first 35 days) are left out.
    result, promoted = train_and_promote(
        settings,
        "fraud",
        config=config,
        source=training_source(frame),
        start=start + pd.Timedelta(days=WARM_UP),
        end=start + pd.Timedelta(days=TRAIN_END),
        params={"n_estimators": 100},
        check_drift=False,
    )
    assert promoted, result.gate_report

    # Live traffic: the same features, computed over the whole history, for days 56..69.
    live = frame[frame["tx_datetime"] >= start + pd.Timedelta(days=TRAIN_END)]
    registry = Registry.from_settings(settings)
    features = registry.get("fraud", 1).feature_names
    values = live[features].astype(object).where(live[features].notna(), None)  # NaN -> null
    instances = values.assign(tx_id=live["tx_id"].astype(str)).to_dict("records")
    event_times = {
        str(t): ts.tz_localize("UTC").to_pydatetime()
        for t, ts in zip(live["tx_id"], live["tx_datetime"], strict=True)
    }
    log = open_audit_log(settings.audit.url, root=settings.root)
    served = create_app(
        [ServedModel("fraud", entity_keys=("tx_id",))],
        RegistryModelSource(registry),
        settings=settings.serving,
        audit=EventTimeAuditLog(log, event_times),
        refresh_s=0,
        close_audit=True,
    )
    known_at = frame.set_index("tx_id")["label_known_at"]
    now = start + pd.Timedelta(days=DAYS + 7)  # every label of the replay is known
    ids: list[str] = []
    with TestClient(served) as client:
        for i in range(0, len(instances), CHUNK):
            answer = client.post(
                "/v1/models/fraud/predict", json={"instances": instances[i : i + CHUNK]}
            )
            assert answer.status_code == 200, answer.text
            ids += [p["prediction_id"] for p in answer.json()["predictions"]]
        first = _monitor(root, now)
        before_labels = _windows(settings)
        labels = live["is_fraud"].to_numpy()
        when = known_at.reindex(live["tx_id"]).dt.tz_localize("UTC").map(datetime.isoformat)
        for i in range(0, len(ids), CHUNK):
            body = {
                "labels": [
                    {"prediction_id": p, "label": int(y), "ts": ts}
                    for p, y, ts in zip(
                        ids[i : i + CHUNK], labels[i : i + CHUNK], when[i : i + CHUNK], strict=True
                    )
                ]
            }
            answer = client.post("/v1/feedback", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["unknown_count"] == 0
    registry.close()
    second = _monitor(root, now)
    return Project(
        root, settings, start.tz_localize("UTC"), before_labels, _windows(settings), (first, second)
    )


def _by_day(project: Project, windows: list[dict[str, Any]]) -> dict[int, str]:
    out = {}
    for w in windows:
        start = pd.Timestamp(w["window_start"])
        start = start.tz_localize("UTC") if start.tzinfo is None else start
        out[int((start - project.start) / pd.Timedelta(days=1))] = str(w["verdict"])
    return out


def test_served_traffic_has_no_drift_before_the_drift_day_and_concept_drift_from_it(
    project: Project,
) -> None:
    verdicts = _by_day(project, project.windows)
    assert sorted(verdicts) == list(range(TRAIN_END, DAYS))  # one window per replayed day
    assert {verdicts[d] for d in range(TRAIN_END, DRIFT_DAY)} == {"no-drift"}
    assert {verdicts[d] for d in range(DRIFT_DAY, DAYS)} == {"concept-drift"}
    assert "concept-drift" in project.outputs[1]
    alerts = (project.root / "alerts.jsonl").read_text().splitlines()
    assert len(alerts) == 1  # one incident, opened on the drift day
    assert '"concept-drift"' in alerts[0]


def test_concept_drift_is_called_only_once_feedback_brings_the_labels(project: Project) -> None:
    before = _by_day(project, project.before_labels)
    assert sorted(before) == list(range(TRAIN_END, DAYS))
    assert "concept-drift" not in before.values()  # inputs alone cannot show it
    assert all(w["labelled"] == 0 for w in project.before_labels)
    assert all(w["labelled"] == w["rows"] for w in project.windows)
    assert f"{DAYS - TRAIN_END} window(s) assessed" in project.outputs[1]  # re-assessed


def test_the_baseline_is_the_registered_versions_held_out_evaluation(project: Project) -> None:
    registry = Registry.from_settings(project.settings)
    try:
        reference = RegistryReferences(registry, threshold=0.5).reference("fraud", 1)
        metrics = registry.get("fraud", 1).metrics
        stored = registry.profile("fraud", 1)
        assert reference is not None
        assert reference.baseline is not None
        assert stored is not None
        assert reference.profile.to_dict() == stored.to_dict()
        assert reference.baseline.labelled == metrics["rows"]
        assert reference.baseline.roc_auc == metrics["roc_auc"]
        assert reference.baseline.recall == metrics["recall_at_0.5"]
        assert reference.baseline.positives == round(metrics["rows"] * metrics["positive_rate"])
        assert RegistryReferences(registry).reference("fraud", 99) is None
    finally:
        registry.close()


def test_the_report_of_the_served_model_is_written_from_the_stored_series(
    project: Project,
) -> None:
    out = project.root / "report.html"
    result = runner.invoke(
        cli,
        ["monitor", "report", "--model", "fraud", "--out", str(out)],
        env={"DRIFTLOOP_CONFIG": str(project.root / "driftloop.toml")},
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<svg" in page
    assert "concept-drift" in page
    assert "terminal_fraud_rate_28d" in page
