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

from driftloop.core.errors import (
    GateFailedError,
    InsufficientDataError,
    InvalidParameterError,
    NotFoundError,
    SchemaMismatchError,
)
from driftloop.registry import Registry
from driftloop.training import TrainingPipeline
from training_helpers import project

FAST = {"n_estimators": 30}
QUALITY = ("roc_auc", "pr_auc", "recall_at_fpr_0.01", "brier", "ece")


def copy_data(src: Path, dst: Path, **edits: pd.DataFrame) -> Path:
    dst.mkdir()
    for file in ("transactions", "customers", "labels"):
        frame = edits.get(file, pd.read_parquet(src / f"{file}.parquet"))
        frame.to_parquet(dst / f"{file}.parquet", index=False)
    return dst


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from driftloop.core.config import load_settings
    from driftloop.training import TrainingPipeline
    root, data = sys.argv[1:3]
    def stop_after(step):
        if step == "fit":
            print("fit finished", flush=True)
            sys.stdin.read()  # wait here until the test kills this process
    settings = load_settings(
        root=root, environ={}, overrides={"gates.max_p99_latency_ms": 1e4}
    )
    pipeline = TrainingPipeline(settings, data, params={"n_estimators": 30})
    pipeline.run(on_step_done=stop_after)
    """
)


def test_killed_pipeline_resumes_after_its_last_finished_step_with_the_same_model(
    tmp_path: Path, data_dir: Path
) -> None:
    killed = project(tmp_path, "killed")
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(killed.root), str(data_dir)],
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

    resumed = TrainingPipeline(killed, data_dir, params=FAST).run()
    assert resumed.ran == ["evaluate", "gates", "register"]
    assert [s.status for s in resumed.steps[:5]] == ["cached"] * 5

    clean = TrainingPipeline(project(tmp_path, "clean"), data_dir, params=FAST).run()
    assert resumed.version is not None
    assert clean.version is not None
    assert resumed.version.artifacts["model"] == clean.version.artifacts["model"]
    assert {k: resumed.metrics[k] for k in QUALITY} == {k: clean.metrics[k] for k in QUALITY}


def test_rerunning_a_finished_pipeline_does_nothing(tmp_path: Path, data_dir: Path) -> None:
    settings = project(tmp_path)
    first = TrainingPipeline(settings, data_dir, params=FAST).run()
    assert first.version is not None
    again = TrainingPipeline(settings, data_dir, params=FAST).run()
    assert again.ran == []
    assert again.version == first.version
    assert [v.version for v in Registry.from_settings(settings).versions("fraud")] == [1]


def test_changing_a_fit_parameter_reruns_only_fit_and_what_follows(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = project(tmp_path)
    TrainingPipeline(settings, data_dir, params=FAST).run()
    changed = TrainingPipeline(settings, data_dir, params={"n_estimators": 31}).run()
    assert changed.ran == ["fit", "evaluate", "gates", "register"]
    assert changed.version is not None
    assert changed.version.version == 2


def test_splits_follow_time_and_passing_gates_make_a_challenger(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = project(tmp_path)
    result = TrainingPipeline(settings, data_dir, params=FAST).run()
    assert result.version is not None
    splits = result.version.lineage["splits"]
    assert splits["train"][1] < splits["valid"][0] <= splits["valid"][1] < splits["test"][0]
    assert result.gate_report["passed"], result.gate_report
    registry = Registry.from_settings(settings)
    assert registry.resolve("fraud", "challenger").version == 1
    assert registry.profile("fraud", 1) is not None
    assert {"roc_auc", "segments", "latency_p99_ms"} <= set(result.version.metrics)
    names = [c["name"] for c in result.gate_report["checks"]]
    assert names == [
        "vs_champion_auc",
        "fairness_dp:age_band",
        "fairness_eo:age_band",
        "calibration_ece",
        "latency_p99",
        "signature",
    ]


def test_failing_batch_is_quarantined_and_the_error_names_the_failed_checks(
    tmp_path: Path, data_dir: Path
) -> None:
    tx = pd.read_parquet(data_dir / "transactions.parquet")
    tx.loc[tx.index[:50], "amount"] = -1.0
    bad = copy_data(data_dir, tmp_path / "bad", transactions=tx)
    settings = project(tmp_path)
    with pytest.raises(GateFailedError, match=r"range:amount \(50 value\(s\) outside") as info:
        TrainingPipeline(settings, bad, params=FAST).run()
    folder = Path(str(info.value).rsplit("quarantined in ", 1)[1].rstrip("."))
    assert len(pd.read_parquet(folder / "batch.parquet")) == len(tx)
    assert (folder / "report.json").is_file()


def test_drifted_window_is_refused_against_the_champions_training_set(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = project(tmp_path)
    first = TrainingPipeline(settings, data_dir, params=FAST).run()
    assert first.version is not None
    Registry.from_settings(settings).set_alias("fraud", "champion", 1, who="test")
    tx = pd.read_parquet(data_dir / "transactions.parquet")
    tx["amount"] = tx["amount"] * 3
    inflated = copy_data(data_dir, tmp_path / "inflated", transactions=tx)
    with pytest.raises(GateFailedError, match=r"drift:amount \(PSI"):
        TrainingPipeline(settings, inflated, params=FAST).run()


def test_missing_label_column_is_named(tmp_path: Path, data_dir: Path) -> None:
    labels = pd.read_parquet(data_dir / "labels.parquet").rename(columns={"is_fraud": "fraud"})
    folder = copy_data(data_dir, tmp_path / "nolabel", labels=labels)
    with pytest.raises(SchemaMismatchError, match="no label column 'is_fraud'"):
        TrainingPipeline(project(tmp_path), folder, params=FAST).run()


def test_empty_training_window_is_named(tmp_path: Path, data_dir: Path) -> None:
    pipeline = TrainingPipeline(
        project(tmp_path), data_dir, start=pd.Timestamp("2030-01-01"), params=FAST
    )
    with pytest.raises(InsufficientDataError, match="holds no labelled transactions"):
        pipeline.run()


def test_a_split_without_positives_is_named(tmp_path: Path, data_dir: Path) -> None:
    labels = pd.read_parquet(data_dir / "labels.parquet")
    labels["is_fraud"] = np.int8(0)
    folder = copy_data(data_dir, tmp_path / "nofraud", labels=labels)
    with pytest.raises(InsufficientDataError, match=r"train split .* 0 positive"):
        TrainingPipeline(project(tmp_path), folder, params=FAST).run()


def test_estimator_without_predict_proba_is_refused(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(InvalidParameterError, match="LinearSVC has no predict_proba"):
        TrainingPipeline(project(tmp_path), data_dir, estimator=LinearSVC())


def test_missing_data_folder_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"has no transactions\.parquet"):
        TrainingPipeline(project(tmp_path), tmp_path).run()


def test_any_sklearn_classifier_trains_and_registers_with_skops(
    tmp_path: Path, data_dir: Path
) -> None:
    estimator = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    result = TrainingPipeline(project(tmp_path), data_dir, estimator=estimator).run()
    assert result.version is not None
    assert result.version.flavor == "sklearn"
    assert result.metrics["roc_auc"] > 0.5


def test_optuna_search_picks_the_parameters_that_fit_uses(tmp_path: Path, data_dir: Path) -> None:
    result = TrainingPipeline(project(tmp_path), data_dir, params=FAST, search_trials=2).run()
    assert "search" in result.ran
    assert result.version is not None
    assert set(result.version.params) >= {"num_leaves", "learning_rate", "n_estimators"}
