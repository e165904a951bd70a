from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from driftloop.monitoring import realized_performance


def test_metrics_equal_scikit_learn_and_skip_unlabelled_records() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random(5_000) < 0.1).astype(float)
    scores = np.clip(0.3 * labels + rng.normal(0.3, 0.2, 5_000), 0, 1).round(2)  # with ties
    labels_pending = labels.copy()
    labels_pending[:1_000] = np.nan
    p = realized_performance(scores, labels_pending, threshold=0.5)
    known_s, known_y = scores[1_000:], labels[1_000:]
    assert p.labelled == 4_000
    assert p.roc_auc == pytest.approx(roc_auc_score(known_y, known_s), rel=1e-12)
    assert p.precision == pytest.approx(precision_score(known_y, known_s >= 0.5))
    assert p.recall == pytest.approx(recall_score(known_y, known_s >= 0.5))


def test_calibration_error_is_zero_for_calibrated_scores_and_large_otherwise() -> None:
    rng = np.random.default_rng(6)
    scores = rng.choice([0.05, 0.35, 0.65, 0.95], 200_000)
    labels = (rng.random(200_000) < scores).astype(float)
    assert realized_performance(scores, labels, threshold=0.5).ece < 0.01
    assert realized_performance(scores, 1 - labels, threshold=0.5).ece > 0.4


def test_one_class_or_no_labels_give_nan_not_an_error() -> None:
    p = realized_performance(np.array([0.1, 0.9]), np.array([0.0, 0.0]), threshold=0.5)
    assert np.isnan(p.roc_auc)
    assert np.isnan(p.recall)
    none = realized_performance(np.array([0.1]), np.array([np.nan]), threshold=0.5)
    assert none.labelled == 0
