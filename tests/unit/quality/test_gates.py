from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.core.config import GatesConfig, load_settings
from driftloop.core.errors import ConfigError, GateFailedError
from driftloop.quality import GateReport, profile_psi, quarantine, release_gates, validate_frame
from driftloop.stats import Profile

rng = np.random.default_rng(1)
N = 4_000
Y = (rng.random(N) < 0.1).astype(int)
GOOD = np.clip(0.1 + 0.5 * Y + rng.normal(0, 0.1, N), 0, 1)
GROUPS = rng.choice(["18-29", "65+"], N)


def test_candidate_worse_than_the_champion_on_the_same_window_is_refused() -> None:
    noisy = np.clip(GOOD + rng.normal(0, 0.4, N), 0, 1)
    report = release_gates(
        GatesConfig(sensitive_attribute=None), y_true=Y, scores=noisy, champion_scores=GOOD
    )
    auc = next(c for c in report.checks if c.name == "vs_champion_auc")
    assert not auc.passed
    assert "vs_champion_auc" in report.summary()
    with pytest.raises(GateFailedError, match="vs_champion_auc"):
        report.raise_if_failed()


def test_unfair_model_fails_the_fairness_gates() -> None:
    biased = np.where(GROUPS == "65+", np.minimum(GOOD + 0.5, 1.0), GOOD)
    report = release_gates(GatesConfig(), y_true=Y, scores=biased, sensitive=GROUPS)
    failed = {c.name for c in report.failed}
    assert "fairness_dp:age_band" in failed


def test_latency_calibration_and_signature_are_judged_with_their_numbers() -> None:
    report = release_gates(
        GatesConfig(max_p99_latency_ms=1.0, sensitive_attribute=None),
        y_true=Y,
        scores=np.full(N, 0.9),
        latency_p99_ms=2.5,
        signature_problems=["missing feature 'amount'"],
    )
    by_name = {c.name: c for c in report.checks}
    assert not by_name["latency_p99"].passed
    assert by_name["latency_p99"].value == 2.5
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


def test_validation_checks_schema_nulls_ranges_and_quarantines(tmp_path) -> None:
    frame = pd.DataFrame({"amount": [1.0, None, 3.0, -2.0], "when": ["x"] * 4})
    report = validate_frame(
        frame,
        schema={"amount": "numeric", "when": "datetime", "label": "numeric"},
        ranges={"amount": (0, None)},
        config=GatesConfig(min_rows=10),
    )
    assert {c.name for c in report.failed} == {
        "rows",
        "schema:when",
        "schema:label",
        "nulls:amount",
        "range:amount",
    }
    folder = quarantine(frame, report, tmp_path)
    assert pd.read_parquet(folder / "batch.parquet").shape == frame.shape


def test_gates_section_is_read_from_driftloop_toml(tmp_path) -> None:
    (tmp_path / "driftloop.toml").write_text("[gates]\nmin_auc_ratio = 0.95\nmax_ece = 0.1\n")
    settings = load_settings(root=tmp_path, environ={})
    assert settings.gates.min_auc_ratio == 0.95
    with pytest.raises(ConfigError, match=r"gates\.max_ece"):
        load_settings(root=tmp_path, environ={"DRIFTLOOP_GATES__MAX_ECE": "2"})
