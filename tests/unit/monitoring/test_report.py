from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring import Reference, assess, drift_report, print_report
from driftloop.stats import Profile


def _frame(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-3 * x + 4))).astype(float)
    return pd.DataFrame(
        {
            "x": x,
            "noise": rng.normal(0, 1, n),
            "channel": rng.choice(["web", "pos"], n),
            "score": 1 / (1 + np.exp(-3 * x + 4)),
            "label": label,
        }
    )


def test_a_shifted_frame_is_data_drift_with_the_moved_feature_named() -> None:
    report = drift_report(_frame(20_000), _frame(5_000, shift=0.8, seed=1))
    assert report.verdict == "data-drift"
    assert report.drifted_features == ("x",)
    assert report.prediction_drift > 0.2
    frame = report.feature_frame()
    assert bool(frame.loc["x", "drifted"])
    assert not bool(frame.loc["noise", "drifted"])
    out = io.StringIO()
    print_report(report, Console(file=out, width=160))
    assert "data-drift" in out.getvalue()
    assert "x" in out.getvalue()


def test_the_same_distribution_is_no_drift() -> None:
    assert drift_report(_frame(20_000), _frame(5_000, seed=2)).verdict == "no-drift"


def test_too_few_rows_is_insufficient_data_not_a_verdict() -> None:
    report = drift_report(
        _frame(20_000), _frame(50, shift=3.0, seed=1), config=MonitoringConfig(min_rows=200)
    )
    assert report.verdict == "insufficient-data"
    assert report.drifted_features == ()


def test_features_missing_from_the_window_are_named_in_the_reasons() -> None:
    report = drift_report(_frame(20_000), _frame(5_000, seed=3).drop(columns=["noise"]))
    assert report.features.status["noise"] == "missing"
    assert any("missing features: noise" in r for r in report.reasons)


def test_scores_that_stop_ranking_fraud_are_concept_drift() -> None:
    ref = _frame(20_000)
    cur = _frame(20_000, seed=4)
    cur["label"] = cur["label"].sample(frac=1, random_state=0).to_numpy()  # labels decoupled
    report = drift_report(ref, cur)
    assert report.verdict == "concept-drift"
    assert report.drifted_features == ()
    assert any("ROC AUC" in r for r in report.reasons)


def test_pending_labels_give_no_performance_verdict() -> None:
    ref = _frame(20_000)
    cur = _frame(5_000, shift=0.8, seed=1).assign(label=np.nan)
    report = drift_report(ref, cur)
    assert report.performance is None
    assert report.verdict == "data-drift"
    assert any("no labelled records yet" in r for r in report.reasons)


def test_a_reference_survives_json() -> None:
    ref = _frame(2_000)
    report = drift_report(ref, ref)
    reference = Reference(Profile.from_frame(ref[["x"]]), report.baseline)
    again = Reference.from_dict(reference.to_dict())
    assert again.profile == reference.profile
    assert again.baseline == reference.baseline
    assert assess(again, ref).verdict == "no-drift"


def test_min_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_rows"):
        MonitoringConfig(min_rows=0)


def test_drift_tables_show_long_feature_names_whole_on_an_80_column_terminal() -> None:
    rng = np.random.default_rng(3)
    names = ["customer_terminal_fraud_ratio_over_the_last_thirty_days", "customer_count_1h"]
    before = pd.DataFrame({n: rng.normal(0, 1, 1_000) for n in names})
    after = pd.DataFrame({n: rng.normal(0.5, 1, 1_000) for n in names})
    report = drift_report(before, after, features=names, score=None, label=None)
    out = io.StringIO()
    print_report(report, Console(file=out, width=80))
    rows = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert all(len(line) <= 80 for line in rows)
    first_cells = "".join(line.split("│")[1].strip() for line in rows)
    for name in names:
        assert name in first_cells  # folded onto more lines, never cut to "custome…"
