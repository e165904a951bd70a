"""Realized performance of a model on the records whose labels have arrived.

>>> import numpy as np
>>> p = realized_performance(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]),
...                          threshold=0.5)
>>> p.roc_auc, p.precision, p.recall
(0.75, 1.0, 0.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from driftloop.stats import expected_calibration_error, precision_recall_at, roc_auc

__all__ = ["Performance", "realized_performance"]


@dataclass(frozen=True)
class Performance:
    """Metrics on ``labelled`` records (NaN where undefined, e.g. AUC with one class)."""

    labelled: int
    positives: int
    roc_auc: float
    precision: float
    recall: float
    ece: float
    mean_score: float
    positive_rate: float

    def to_dict(self) -> dict[str, float]:
        """Numbers by name."""
        return {k: float(v) for k, v in asdict(self).items()}


def realized_performance(
    scores: NDArray[np.float64], labels: NDArray[np.float64], *, threshold: float, bins: int = 10
) -> Performance:
    """ROC AUC, precision and recall at ``threshold`` (score >= threshold flags), and the
    expected calibration error over ``bins`` equal-width score bins (ROC AUC and ECE by
    :mod:`driftloop.stats`, as the training pipeline's evaluation). Unlabelled (NaN)
    records are left out; ROC AUC is NaN when the labels hold one class only."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(labels) & ~np.isnan(scores)
    s, y = scores[known], labels[known] > 0.5
    n, pos = len(s), int(y.sum())
    nan = float("nan")
    if n == 0:
        return Performance(0, 0, nan, nan, nan, nan, nan, nan)
    auc = roc_auc(y, s) if 0 < pos < n else nan
    precision, recall = precision_recall_at(y, s, threshold)
    ece = expected_calibration_error(y, s, bins)
    return Performance(n, pos, auc, precision, recall, ece, float(s.mean()), pos / n)
