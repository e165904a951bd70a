"""Release and data gates that a broken model or batch cannot pass, each with its number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.core.config import GatesConfig, load_settings
from driftloop.core.errors import ConfigError, GateFailedError
from driftloop.quality import (
    GateReport,
    profile_psi,
    quarantine,
    release_gates,
    single_feature_skill,
    validate_features,
)
from driftloop.registry import Signature
from driftloop.stats import TASKS, Outputs, Profile, baseline, evaluate

rng = np.random.default_rng(1)
N = 4_000
Y = (rng.random(N) < 0.1).astype(int)
GOOD = np.clip(0.1 + 0.5 * Y + rng.normal(0, 0.1, N), 0, 1)
GROUPS = rng.choice(["young", "old"], N)
PRIOR = evaluate(baseline(TASKS["binary"], Y, classes=2).outputs(N), Y)


def binary(scores: np.ndarray) -> Outputs:
    return Outputs("binary", scores, ("0", "1"))


def gates(**config: object) -> GatesConfig:
    return GatesConfig.model_validate(config)


def test_a_constant_model_is_no_better_than_the_prior_and_fails() -> None:
    report = release_gates(
        gates(), metric="roc_auc", y_true=Y, outputs=binary(np.full(N, 0.1)), baseline_metrics=PRIOR
    )
    assert [c.name for c in report.failed] == ["baseline:roc_auc"]
    with pytest.raises(GateFailedError, match="no better than guessing"):
        report.raise_if_failed()


def test_candidate_worse_than_the_champion_on_the_same_rows_is_refused() -> None:
    noisy = np.clip(GOOD + rng.normal(0, 0.4, N), 0, 1)
    report = release_gates(
        gates(),
        metric="roc_auc",
        y_true=Y,
        outputs=binary(noisy),
        baseline_metrics=PRIOR,
        champion_outputs=binary(GOOD),
    )
    assert "vs_champion:roc_auc" in {c.name for c in report.failed}


def test_unfair_model_fails_and_an_absent_attribute_is_a_failure_not_a_skip() -> None:
    biased = np.where(GROUPS == "old", np.minimum(GOOD + 0.5, 1.0), GOOD)
    config = gates(sensitive_attribute="age_band", max_ece=1.0)
    report = release_gates(
        config,
        metric="roc_auc",
        y_true=Y,
        outputs=binary(biased),
        baseline_metrics=PRIOR,
        sensitive=GROUPS,
    )
    assert "fairness_dp:age_band" in {c.name for c in report.failed}
    absent = release_gates(
        config, metric="roc_auc", y_true=Y, outputs=binary(GOOD), baseline_metrics=PRIOR
    )
    assert [c.name for c in absent.failed] == ["fairness:age_band"]
    assert "not in the training data" in absent.failed[0].detail


def test_a_regression_model_is_judged_on_its_error_and_group_gap() -> None:
    values = rng.normal(100, 20, N)
    truth = values + rng.normal(0, 5, N)
    mean = evaluate(baseline(TASKS["regression"], truth).outputs(N), truth)
    report = release_gates(
        gates(sensitive_attribute="region", metric_limits={"rmse": 4.0}),
        metric="rmse",
        y_true=truth,
        outputs=Outputs("regression", values),
        baseline_metrics=mean,
        sensitive=GROUPS,
    )
    by_name = {c.name: c for c in report.checks}
    assert by_name["baseline:rmse"].passed
    assert not by_name["limit:rmse"].passed  # rmse about 5 > 4
    assert by_name["fairness_gap:region"].passed
    assert "calibration_ece" not in by_name


def test_a_leaked_label_is_named_by_the_feature_that_carries_it() -> None:
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=N) + Y,
            "settled_late": np.where(Y == 1, "yes", "no"),
            "label": Y,
        }
    )
    signature = Signature.infer(
        frame[["income", "settled_late"]], task="binary", classes=("0", "1")
    )
    leaks = single_feature_skill(
        signature, frame[: N // 2], frame[N // 2 :], label="label", metric="roc_auc"
    )
    assert leaks["settled_late"] == pytest.approx(1.0)
    assert leaks["income"] < 0.9
    report = release_gates(
        gates(),
        metric="roc_auc",
        y_true=Y,
        outputs=binary(GOOD),
        baseline_metrics=PRIOR,
        single_feature_skill=leaks,
    )
    failed = {c.name: c for c in report.failed}
    assert "settled_late" in failed["leakage"].detail


def test_latency_calibration_and_signature_are_judged_with_their_numbers() -> None:
    report = release_gates(
        gates(max_latency_ms=1.0),
        metric="roc_auc",
        y_true=Y,
        outputs=binary(np.clip(GOOD + 0.4, 0, 1)),
        baseline_metrics=PRIOR,
        latency_ms=2.5,
        signature_problems=["missing feature 'amount'"],
    )
    by_name = {c.name: c for c in report.checks}
    assert not by_name["latency"].passed
    assert by_name["latency"].value == 2.5
    assert not by_name["calibration_ece"].passed
    assert "missing feature 'amount'" in by_name["signature"].detail
    assert GateReport.from_dict(report.to_dict()) == report


def test_psi_from_profile_bins_flags_a_shifted_feature_only() -> None:
    ref = pd.DataFrame(
        {"amount": rng.gamma(2, 30, 5000), "channel": rng.choice(["web", "pos"], 5000)}
    )
    new = ref.copy()
    new["amount"] = new["amount"] * 1.5
    psi = profile_psi(Profile.from_frame(ref), new)
    assert psi["amount"] > 0.25
    assert psi["channel"] < 0.01


def test_the_data_gate_checks_the_models_own_features(tmp_path: Path) -> None:
    ref = pd.DataFrame(
        {
            "income": rng.normal(50, 10, 1000),
            "mostly_null": np.where(rng.random(1000) < 0.85, np.nan, 1.0),
            "city": rng.choice(["a", "b"], 1000),
        }
    )
    signature = Signature.infer(ref)
    report = validate_features(ref, signature, config=gates())
    assert [c.name for c in report.failed] == ["nulls:mostly_null"]  # 85% null > 50%
    new = ref.assign(income=ref["income"] * 3, city=ref["city"].where(rng.random(1000) < 0.7))
    against = validate_features(
        new,
        signature,
        config=gates(max_null_rate=0.9),
        reference=signature,
        profile=Profile.from_frame(ref),
    )
    assert {c.name for c in against.failed} == {
        "null_increase:city",
        "range:income",
        "drift:income",
    }
    retyped = Signature.infer(ref.assign(city=1.0))
    kinds = validate_features(ref, signature, config=gates(max_null_rate=1), reference=retyped)
    assert [c.name for c in kinds.failed] == ["kind:city"]
    folder = quarantine(new, against, tmp_path)
    assert pd.read_parquet(folder / "batch.parquet").shape == new.shape


def test_gates_section_is_read_from_driftloop_toml_and_old_keys_still_work(
    tmp_path: Path,
) -> None:
    (tmp_path / "driftloop.toml").write_text(
        "[gates]\nmin_auc_ratio = 0.95\nmax_p99_latency_ms = 9.0\nmax_ece = 0.1\n"
    )
    settings = load_settings(root=tmp_path, environ={})
    assert settings.gates.champion_tolerance == pytest.approx(0.05)
    assert settings.gates.max_latency_ms == 9.0
    with pytest.raises(ConfigError, match=r"gates\.max_ece"):
        load_settings(root=tmp_path, environ={"DRIFTLOOP_GATES__MAX_ECE": "2"})
