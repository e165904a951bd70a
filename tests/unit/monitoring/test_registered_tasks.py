"""Models of every task trained and registered by the pipeline, monitored from the registry.

The references are what the ``register`` step stored (profile, held-out metrics with their
standard errors, a multiclass model's predicted-class mix); the records are spelt as the
audit log keeps them: booleans as numbers, categories as text, the label encoded, the
task's ``outputs`` and the ``missing`` features (here, the nulls of the request).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.core.config import MonitoringConfig, load_settings
from driftloop.monitoring import FrameRecordSource, Monitor, MonitoringStore, RegistryReferences
from driftloop.registry import Registry
from driftloop.stats import encode_labels
from driftloop.training import TrainingPipeline
from tabular_world import model_toml, table

LIVE = datetime(2026, 4, 1)
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    task = request.param
    root = tmp_path_factory.mktemp(task)
    (root / "data").mkdir()
    table(task, seed=1).to_csv(root / "data" / "applications.csv", index=False)
    (root / "driftloop.toml").write_text(model_toml(task, name="loans"))
    settings = load_settings(root / "driftloop.toml", environ={})
    pipeline = TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 30})
    assert pipeline.run().version is not None
    reg = Registry.from_settings(settings)
    yield reg
    reg.close()


def served(registry: Registry, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` scored by version 1 and written down as the audit log reads it back."""
    model = registry.load("loans", 1)
    signature = model.signature
    out = model.predict_frame(frame)
    label, _ = encode_labels(frame[signature.label or ""], signature.task, signature.classes)
    records = pd.DataFrame(
        {
            "prediction_id": frame["application_id"],
            "ts": pd.to_datetime(frame["applied_at"]).dt.tz_localize("UTC"),
            "model": "loans",
            "version": "1",
            "route": "champion",
            "score": out.score,
            "decision": "approve",
            "label": label.astype(np.float64),
        }
    )
    for name in signature.names:
        values = frame[name]
        if signature.spec(name).kind == "boolean":
            values = values.map({True: 1.0, False: 0.0}).astype(np.float64)
        records[name] = values.to_numpy()
    if signature.task == "multiclass":
        records["outputs"] = [
            {
                "class": signature.classes[i],
                "probabilities": dict(zip(out.classes, row.tolist(), strict=True)),
            }
            for i, row in zip(out.class_index, out.raw, strict=True)
        ]
    elif signature.task == "regression":
        records["outputs"] = [{"value": float(v)} for v in out.raw]
    else:
        records["outputs"] = None
    nulls = frame[signature.names].isna()
    records["missing"] = [list(nulls.columns[row]) for row in nulls.to_numpy()]
    return records


def verdicts(registry: Registry, records: pd.DataFrame, tmp_path: Path) -> list:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.db'}")
    try:
        monitor = Monitor(
            FrameRecordSource(records),
            RegistryReferences(registry),
            store,
            MonitoringConfig(window_size="1D", alerts=()),
        )
        return monitor.run_once(pd.Timestamp(LIVE, tz="UTC") + pd.Timedelta(days=4))
    finally:
        store.dispose()


def live(task: str, **planted: int) -> pd.DataFrame:
    """Three days of applications after training, as the same world makes them."""
    return table(task, rows=3_000, days=3, seed=7, start=LIVE, **planted)


def test_served_records_like_the_training_data_are_no_drift(
    registry: Registry, tmp_path: Path
) -> None:
    task = registry.get("loans", 1).signature.task
    reports = verdicts(registry, served(registry, live(task)), tmp_path)
    assert len(reports) == 3
    for report in reports:
        assert report.verdict == "no-drift", report.reasons
        assert report.metric == METRIC[task]
        assert report.checks
        assert not report.dropped_metrics
        assert report.missing_rates["income"] > 0  # as in training: no reason
    if task == "multiclass":
        assert all(r.class_mix_drift < 0.1 for r in reports)


def test_labels_against_the_learned_relation_are_concept_drift_on_the_models_metric(
    registry: Registry, tmp_path: Path
) -> None:
    task = registry.get("loans", 1).signature.task
    reports = verdicts(registry, served(registry, live(task, concept_from=0)), tmp_path)
    assert [r.verdict for r in reports] == ["concept-drift"] * 3
    assert all(METRIC[task] in r.dropped_metrics for r in reports)


def test_moved_inputs_before_labels_are_data_drift_naming_them(
    registry: Registry, tmp_path: Path
) -> None:
    task = registry.get("loans", 1).signature.task
    records = served(registry, live(task, drift_from=0))
    reports = verdicts(registry, records.assign(label=np.nan), tmp_path)
    assert [r.verdict for r in reports] == ["data-drift"] * 3
    assert all(set(r.drifted_features) == {"income", "channel"} for r in reports)
    assert all("realized performance unknown" in r.reasons[-1] for r in reports)


def test_a_window_without_its_metric_says_so_rather_than_blame_the_reference(
    registry: Registry, tmp_path: Path
) -> None:
    task = registry.get("loans", 1).signature.task
    if task != "multiclass":
        pytest.skip("only a multiclass window lacks its metric (records without probabilities)")
    records = served(registry, live(task, drift_from=0)).assign(outputs=None)
    reports = verdicts(registry, records, tmp_path)
    assert [r.verdict for r in reports] == ["data-drift"] * 3
    assert all("(the window has no log loss)" in r.reasons[-1] for r in reports)
