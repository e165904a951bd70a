from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from driftloop.core.errors import InsufficientDataError, InvalidParameterError
from driftloop.stats import (
    brier_score,
    demographic_parity_difference,
    equal_opportunity_difference,
    expected_calibration_error,
    pr_auc,
    precision_recall_at,
    recall_at_fpr,
    roc_auc,
)

rng = np.random.default_rng(0)
Y = rng.integers(0, 2, 2_000)
S = np.clip(np.round(rng.random(2_000) * 0.7 + Y * 0.3, 2), 0, 1)  # ties on purpose


def test_ranking_metrics_agree_with_scikit_learn_including_ties() -> None:
    assert roc_auc(Y, S) == pytest.approx(roc_auc_score(Y, S), abs=1e-12)
    assert pr_auc(Y, S) == pytest.approx(average_precision_score(Y, S), abs=1e-12)
    assert brier_score(Y, S) == pytest.approx(brier_score_loss(Y, S), abs=1e-12)


def test_precision_and_recall_at_a_threshold_agree_with_scikit_learn_and_are_nan_if_undefined() -> (
    None
):
    precision, recall = precision_recall_at(Y, S, 0.6)
    assert precision == pytest.approx(precision_score(Y, S >= 0.6), abs=1e-12)
    assert recall == pytest.approx(recall_score(Y, S >= 0.6), abs=1e-12)
    nothing_flagged = precision_recall_at([0, 1], [0.1, 0.2], 0.5)
    assert np.isnan(nothing_flagged[0])
    assert nothing_flagged[1] == 0.0
    assert np.isnan(precision_recall_at([0, 0], [0.1, 0.9], 0.5)[1])  # no positives


def test_recall_at_fpr_never_exceeds_the_false_positive_budget() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.95])
    assert recall_at_fpr(y, s, max_fpr=0.0) == 0.5  # only 0.95 is above every negative
    assert recall_at_fpr(y, s, max_fpr=0.25) == 1.0


def test_perfectly_calibrated_scores_have_zero_ece() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    s = np.array([0.25] * 4 + [0.75] * 4)
    assert expected_calibration_error(y, s, bins=4) == pytest.approx(0.0)
    assert expected_calibration_error(y, 1 - s, bins=4) == pytest.approx(0.5)


def test_fairness_differences_compare_groups() -> None:
    scores = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    y = np.array([1, 1, 0, 1, 1, 1, 0, 0])
    assert demographic_parity_difference(scores, groups) == pytest.approx(0.5 - 0.25)
    assert equal_opportunity_difference(y, scores, groups) == pytest.approx(2 / 3 - 1 / 2)


def test_meaningless_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(InsufficientDataError, match="0 positive"):
        roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(InvalidParameterError, match="same length"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(InsufficientDataError, match="at least two groups"):
        demographic_parity_difference([0.1, 0.2], ["a", "a"])
