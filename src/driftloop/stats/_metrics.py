"""Evaluation, calibration and fairness metrics for binary classifiers, vectorised.

Scores are positive-class probabilities; labels are 0/1. Every function refuses input
that would give a meaningless number (no positives, mismatched lengths) with an error
naming the problem.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> roc_auc(y, s)
0.75
>>> round(brier_score(y, s), 4)
0.1581
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftloop.core.errors import InsufficientDataError, InvalidParameterError

__all__ = [
    "brier_score",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "expected_calibration_error",
    "pr_auc",
    "precision_recall_at",
    "recall_at_fpr",
    "roc_auc",
]


def _pair(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    y = np.asarray(y_true).astype(np.int8, copy=False).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise InvalidParameterError(
            f"Labels and scores must have the same length; got {y.size} labels, {s.size} scores."
        )
    if y.size == 0:
        raise InsufficientDataError("Cannot compute a metric on zero rows.")
    if np.isnan(s).any():
        raise InvalidParameterError(f"Scores contain {int(np.isnan(s).sum())} NaN value(s).")
    return y, s


def _both_classes(y: NDArray[np.int8], metric: str) -> tuple[int, int]:
    positives = int(y.sum())
    negatives = int(y.size - positives)
    if positives == 0 or negatives == 0:
        raise InsufficientDataError(
            f"{metric} needs both classes; got {positives} positive(s) and {negatives} negative(s)."
        )
    return positives, negatives


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y, s = _pair(y_true, scores)
    positives, negatives = _both_classes(y, "ROC AUC")
    from scipy.stats import rankdata  # here: scipy.stats costs seconds to import

    ranks = rankdata(s)
    u = float(ranks[y == 1].sum()) - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def pr_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation)."""
    y, s = _pair(y_true, scores)
    positives, _ = _both_classes(y, "PR AUC")
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    # Only the last index of each run of tied scores is a threshold.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_fpr(y_true: ArrayLike, scores: ArrayLike, max_fpr: float = 0.01) -> float:
    """The highest recall reachable with a false-positive rate of at most ``max_fpr``."""
    if not 0.0 <= max_fpr <= 1.0:
        raise InvalidParameterError(f"'max_fpr' must be in [0, 1]; got {max_fpr}.")
    y, s = _pair(y_true, scores)
    positives, negatives = _both_classes(y, "Recall at FPR")
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    allowed = fp / negatives <= max_fpr
    return float(tp[allowed].max() / positives) if allowed.any() else 0.0


def precision_recall_at(
    y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> tuple[float, float]:
    """Precision and recall of flagging ``score >= threshold``; each NaN where undefined
    (nothing flagged, no positives), as a window of live traffic often has.

    >>> precision_recall_at([0, 0, 1, 1], [0.1, 0.6, 0.35, 0.8])
    (0.5, 0.5)
    """
    y, s = _pair(y_true, scores)
    flagged, positive = s >= threshold, y == 1
    hits = int((flagged & positive).sum())
    n_flagged, n_positive = int(flagged.sum()), int(positive.sum())
    precision = hits / n_flagged if n_flagged else float("nan")
    recall = hits / n_positive if n_positive else float("nan")
    return precision, recall


def brier_score(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Mean squared difference between score and outcome (lower is better)."""
    y, s = _pair(y_true, scores)
    return float(np.mean((s - y) ** 2))


def expected_calibration_error(y_true: ArrayLike, scores: ArrayLike, bins: int = 10) -> float:
    """ECE over ``bins`` equal-width score bins: the row-weighted mean |rate - mean score|."""
    if bins < 1:
        raise InvalidParameterError(f"'bins' must be >= 1; got {bins}.")
    y, s = _pair(y_true, scores)
    index = np.clip((s * bins).astype(np.int64), 0, bins - 1)
    score_sum = np.bincount(index, weights=s, minlength=bins)
    label_sum = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    return float(np.abs(label_sum - score_sum).sum() / y.size)


def _groups(groups: ArrayLike, n: int) -> tuple[NDArray[np.intp], NDArray[np.object_]]:
    values = np.asarray(groups, dtype=object).ravel()
    if values.size != n:
        raise InvalidParameterError(
            f"The sensitive attribute must have one value per row; got {values.size} for {n} rows."
        )
    names, codes = np.unique(values.astype(str), return_inverse=True)
    if names.size < 2:
        raise InsufficientDataError(
            f"Fairness needs at least two groups of the sensitive attribute; got {names.tolist()}."
        )
    return codes, names


def demographic_parity_difference(
    scores: ArrayLike, groups: ArrayLike, threshold: float = 0.5
) -> float:
    """Largest difference between groups in the share of rows flagged (score >= threshold)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    codes, names = _groups(groups, s.size)
    flagged = (s >= threshold).astype(np.float64)
    rates = np.bincount(codes, weights=flagged, minlength=names.size) / np.bincount(
        codes, minlength=names.size
    )
    return float(rates.max() - rates.min())


def equal_opportunity_difference(
    y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike, threshold: float = 0.5
) -> float:
    """Largest difference between groups in true-positive rate; groups without positives
    are left out (their rate is undefined)."""
    y, s = _pair(y_true, scores)
    codes, names = _groups(groups, s.size)
    positive = y == 1
    hits = np.bincount(codes[positive], weights=(s[positive] >= threshold), minlength=names.size)
    totals = np.bincount(codes[positive], minlength=names.size)
    rates = hits[totals > 0] / totals[totals > 0]
    if rates.size < 2:
        raise InsufficientDataError(
            "Equal opportunity needs positives in at least two groups; got "
            f"{int((totals > 0).sum())} group(s) with positives."
        )
    return float(rates.max() - rates.min())
