"""The training pipeline on tables that are not the simulator's: every task, text, boolean
and missing columns, checkpoints, resumption, and clear errors for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.svm import LinearSVC

from driftloop.core.config import ModelConfig, Settings, load_settings
from driftloop.core.errors import (
    GateFailedError,
    InsufficientDataError,
    InvalidParameterError,
    NotFoundError,
    SchemaMismatchError,
)
from driftloop.registry import Registry
from driftloop.training import TrainingPipeline, training_source
from tabular_world import TASK_LABELS, table

FAST = {"n_estimators": 30}


def project(
    tmp_path: Path, task: str = "binary", name: str = "proj", **frame_args: object
) -> Settings:
    root = tmp_path / name
    (root / "data").mkdir(parents=True)
    table(task, **frame_args).to_csv(root / "data" / "applications.csv", index=False)  # type: ignore[arg-type]
    (root / "driftloop.toml").write_text(
        f'[models.loans]\ndata = "data/applications.csv"\nlabel = "{TASK_LABELS[task]}"\n'
        'timestamp = "applied_at"\nid = "application_id"\nexclude = ["applicant_id"]\n'
    )
    return load_settings(root / "driftloop.toml", environ={})


def pipeline(settings: Settings, **options: object) -> TrainingPipeline:
    return TrainingPipeline.from_settings(settings, "loans", params=FAST, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_task_trains_on_text_boolean_and_missing_columns(tmp_path: Path, task: str) -> None:
    settings = project(tmp_path, task)
    result = pipeline(settings).run()
    version = result.version
    assert version is not None
    assert result.gate_report["passed"], result.gate_report
    sig = version.signature
    assert sig.task == task
    kinds = {f.name: f.kind for f in sig.features}
    assert kinds == {
        "income": "number",
        "age": "number",
        "owns_home": "boolean",
        "channel": "category",
        "region": "category",
    }
    assert sig.spec("region").categories == ("east", "north", "south", "west")
    assert (sig.label, sig.timestamp, sig.id) == (TASK_LABELS[task], "applied_at", "application_id")
    expected_metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    assert sig.metric == expected_metric
    assert f"baseline:{expected_metric}" in {c["name"] for c in result.gate_report["checks"]}
    assert any(f"task {task}" in note for note in result.notes)
    if task == "binary":
        assert sig.classes == ("no", "yes")  # the CSV's words, not DuckDB's booleans
    splits = version.lineage["splits"]
    assert splits["train"][1] < splits["valid"][0] <= splits["valid"][1] < splits["test"][0]
    assert Registry.from_settings(settings).profile("loans", 1) is not None


def test_identifier_and_timestamp_columns_are_left_out_and_said(tmp_path: Path) -> None:
    settings = project(tmp_path)
    frame = pd.read_csv(settings.root / "data" / "applications.csv")
    frame["customer_ref"] = [f"C{i}" for i in range(len(frame))]
    frame["signed_at"] = frame["applied_at"]
    frame.to_csv(settings.root / "data" / "applications.csv", index=False)
    result = pipeline(settings).run()
    assert result.version is not None
    assert "customer_ref" not in result.version.feature_names
    notes = " ".join(result.notes)
    assert "left out 'customer_ref'" in notes
    assert "left out 'signed_at': a timestamp" in notes


def test_timestamp_parts_become_features(tmp_path: Path) -> None:
    settings = project(tmp_path)
    config = settings.model("loans").model_copy(
        update={"timestamps": {"applied_at": ("hour", "day_of_week")}}
    )
    result = pipeline(settings, config=config).run()
    assert result.version is not None
    spec = result.version.signature.spec("applied_at_hour")
    assert (spec.derived_from, spec.part) == ("applied_at", "hour")
    assert "applied_at" in result.version.signature.inputs


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from driftloop.core.config import load_settings
    from driftloop.training import TrainingPipeline
    def stop_after(step):
        if step == "fit":
            print("fit finished", flush=True)
            sys.stdin.read()  # wait here until the test kills this process
    settings = load_settings(sys.argv[1], environ={})
    pipeline = TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 30})
    pipeline.run(on_step_done=stop_after)
    """
)


def test_killed_pipeline_resumes_after_its_last_finished_step_with_the_same_model(
    tmp_path: Path,
) -> None:
    killed = project(tmp_path, name="killed")
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(killed.root / "driftloop.toml")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "fit finished":
            proc.kill()
            pytest.fail(f"the run did not reach fit: {proc.communicate()[1]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    resumed = pipeline(killed).run()
    assert resumed.ran == ["evaluate", "gates", "register"]
    assert [s.status for s in resumed.steps[:5]] == ["cached"] * 5
    clean = pipeline(project(tmp_path, name="clean")).run()
    assert resumed.version is not None
    assert clean.version is not None
    assert resumed.version.artifacts["model"] == clean.version.artifacts["model"]
    quality = ("roc_auc", "log_loss", "accuracy")
    assert {k: resumed.metrics[k] for k in quality} == {k: clean.metrics[k] for k in quality}


def test_rerunning_a_finished_pipeline_does_nothing_unless_a_step_is_named(
    tmp_path: Path,
) -> None:
    settings = project(tmp_path)
    first = pipeline(settings).run()
    assert first.version is not None
    again = pipeline(settings).run()
    assert again.ran == []
    assert again.version == first.version
    gates = pipeline(settings, rerun=("gates",)).run()
    assert gates.ran[0] == "gates"  # measured again: a cached failure is not final
    with pytest.raises(InvalidParameterError, match=r"Cannot rerun step\(s\) gatez"):
        pipeline(settings, rerun=("gatez",))


def test_changing_a_fit_parameter_reruns_only_fit_and_what_follows(tmp_path: Path) -> None:
    settings = project(tmp_path)
    pipeline(settings).run()
    changed = TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 31}).run()
    assert changed.ran == ["fit", "evaluate", "gates", "register"]
    assert changed.version is not None
    assert changed.version.version == 2


def test_a_mostly_null_feature_fails_the_data_gate_and_is_quarantined(tmp_path: Path) -> None:
    settings = project(tmp_path)
    path = settings.root / "data" / "applications.csv"
    frame = pd.read_csv(path)
    frame.loc[frame.index[: int(len(frame) * 0.85)], "age"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(GateFailedError, match=r"nulls:age \(null rate 85") as info:
        pipeline(settings).run()
    folder = Path(str(info.value).rsplit("quarantined in ", 1)[1].rstrip("."))
    assert len(pd.read_parquet(folder / "batch.parquet")) == len(frame)


def test_drifted_data_is_refused_against_the_champions_training_set(tmp_path: Path) -> None:
    settings = project(tmp_path)
    pipeline(settings).run()
    Registry.from_settings(settings).set_alias("loans", "champion", 1, who="test")
    path = settings.root / "data" / "applications.csv"
    frame = pd.read_csv(path)
    frame["income"] = frame["income"] * 3
    frame.to_csv(path, index=False)
    with pytest.raises(GateFailedError, match=r"drift:income \(PSI"):
        pipeline(settings).run()


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    settings = project(tmp_path)
    base = settings.model("loans")
    with pytest.raises(SchemaMismatchError, match="no label column 'paid_back'"):
        pipeline(settings, config=base.model_copy(update={"label": "paid_back"})).run()
    frame = pd.read_csv(settings.root / "data" / "applications.csv")
    words = frame.assign(applied_at="last tuesday")
    with pytest.raises(SchemaMismatchError, match="Timestamp column 'applied_at' holds"):
        pipeline(settings, source=training_source(words)).run()
    one_class = frame.assign(repaid="yes")
    with pytest.raises(InsufficientDataError, match="'repaid' has one value only"):
        pipeline(settings, source=training_source(one_class)).run()
    tied = frame.assign(applied_at="2026-03-01T00:00:00")
    with pytest.raises(InsufficientDataError, match="tied timestamps cannot be split"):
        pipeline(settings, source=training_source(tied)).run()
    with pytest.raises(InsufficientDataError, match="holds no rows"):
        pipeline(settings, start=pd.Timestamp("2030-01-01")).run()
    with pytest.raises(NotFoundError, match="does not exist"):
        TrainingPipeline.from_settings(settings, "loans", config=ModelConfig(data="nope.csv"))
    with pytest.raises(InvalidParameterError, match="has no training data"):
        TrainingPipeline.from_settings(settings, "other")


def test_estimator_without_predict_proba_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="LinearSVC has no predict_proba"):
        pipeline(project(tmp_path), estimator=LinearSVC()).run()


def test_any_sklearn_classifier_trains_and_registers_with_skops(tmp_path: Path) -> None:
    estimator = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    result = TrainingPipeline.from_settings(project(tmp_path), "loans", estimator=estimator).run()
    assert result.version is not None
    assert result.version.flavor == "sklearn"
    assert result.metrics["roc_auc"] > 0.5


def test_optuna_search_picks_the_parameters_that_fit_uses(tmp_path: Path) -> None:
    result = pipeline(project(tmp_path, "regression"), search_trials=2).run()
    assert "search" in result.ran
    assert result.version is not None
    assert set(result.version.params) >= {"num_leaves", "learning_rate", "n_estimators"}
