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
from scipy import stats

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
    expected calibration error over ``bins`` equal-width score bins. Unlabelled (NaN)
    records are left out."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(labels) & ~np.isnan(scores)
    s, y = scores[known], labels[known] > 0.5
    n, pos = len(s), int(y.sum())
    nan = float("nan")
    if n == 0:
        return Performance(0, 0, nan, nan, nan, nan, nan, nan)
    auc = nan
    if 0 < pos < n:
        ranks = stats.rankdata(s)
        auc = float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)))
    flagged = s >= threshold
    tp = int((flagged & y).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else nan
    recall = tp / pos if pos else nan
    which = np.clip((s * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=s, minlength=bins) - np.bincount(
        which, weights=y.astype(np.float64), minlength=bins
    )
    ece = float(np.abs(gap).sum() / n) if counts.sum() else nan
    return Performance(n, pos, auc, precision, recall, ece, float(s.mean()), pos / n)
