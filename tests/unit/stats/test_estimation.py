"""Performance estimated from scores alone (CBPE) matches what labels later show, for a
calibrated model, and for an uncalibrated one once its scores are calibrated on labelled
reference records; learned bands flag only what stable windows never reach."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from driftloop.core.errors import InvalidParameterError
from driftloop.stats import (
    Band,
    Calibration,
    estimate_binary_performance,
    estimated_roc_auc,
    fit_calibration,
    learn_band,
    precision_recall_at,
    roc_auc,
)


def calibrated(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are the true probabilities, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = expit(-2.0 + 1.5 * rng.normal(size=n))
    return p, (rng.random(n) < p).astype(np.int8)


@pytest.mark.parametrize("seed", range(5))
def test_estimated_metrics_of_a_calibrated_model_match_the_realized_ones(seed: int) -> None:
    p, y = calibrated(seed)
    est = estimate_binary_performance(p, threshold=0.3)
    precision, recall = precision_recall_at(y, p, 0.3)
    # 20,000 rows with ~17% positives: the realized AUC's own standard error is ~0.004
    assert abs(est["roc_auc"] - roc_auc(y, p)) < 0.015
    assert abs(est["precision_at_0.3"] - precision) < 0.02
    assert abs(est["recall_at_0.3"] - recall) < 0.02
    assert abs(est["positive_rate"] - y.mean()) < 0.01


def test_certain_scores_estimate_exactly_and_ties_count_half() -> None:
    assert estimated_roc_auc([0.0, 0.0, 1.0, 1.0]) == 1.0
    assert estimated_roc_auc([0.5] * 10) == 0.5
    # two rows of the same score: each pair is a tie
    assert estimated_roc_auc([0.2, 0.8], scores=[1.0, 1.0]) == 0.5
    assert math.isnan(estimated_roc_auc([1.0, 1.0]))  # no negative can exist


def test_an_uncalibrated_model_is_estimated_after_calibration_on_reference_labels() -> None:
    rng = np.random.default_rng(7)
    n = 40_000
    p = expit(-2.0 + 1.5 * rng.normal(size=n))
    y = (rng.random(n) < p).astype(np.int8)
    scores = p**0.3  # the same ranking, far from probabilities
    realized = roc_auc(y, scores)
    assert abs(estimated_roc_auc(scores) - realized) > 0.05  # raw scores mislead
    half = n // 2
    calibration = fit_calibration(scores[:half], y[:half], bins=20)
    est = estimate_binary_performance(scores[half:], threshold=0.5, calibration=calibration)
    assert abs(est["roc_auc"] - roc_auc(y[half:], scores[half:])) < 0.015
    assert abs(est["positive_rate"] - y[half:].mean()) < 0.01


def test_calibration_round_trips_and_refuses_a_malformed_one() -> None:
    cal = fit_calibration([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], bins=2)
    again = Calibration.from_dict(cal.to_dict())
    assert again([0.05, 0.39]).tolist() == cal([0.05, 0.39]).tolist()
    with pytest.raises(InvalidParameterError, match="one rate more than edges"):
        Calibration.from_dict({"edges": [0.5], "rates": [0.1]})


def test_scores_outside_probabilities_are_refused_without_calibration() -> None:
    with pytest.raises(InvalidParameterError, match=r"probabilities in \[0, 1\]"):
        estimate_binary_performance(np.array([-1.0, 2.0]))


def test_a_band_flags_only_its_bad_side() -> None:
    lower = learn_band([0.80, 0.81, 0.79, 0.80, 0.82, 0.78], sigmas=3, side="lower")
    assert lower.breached(0.7)
    assert not lower.breached(0.95)  # better is never an alert
    upper = learn_band([0.01, 0.02, 0.015, 0.012], side="upper")
    assert upper.breached(0.2)
    assert not upper.breached(0.0)
    assert not upper.breached(math.nan)


def test_a_band_is_never_narrower_than_its_least_width() -> None:
    flat = learn_band([0.001, 0.001, 0.001], side="upper", min_width=0.02)
    assert flat.upper == pytest.approx(0.021)
    assert not flat.breached(0.015)
    assert Band.from_dict(flat.to_dict()) == flat


def test_a_band_needs_two_windows() -> None:
    with pytest.raises(InvalidParameterError, match="two reference windows"):
        learn_band([0.8, math.nan])
