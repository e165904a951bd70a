"""Performance before labels: confidence-based estimation (CBPE) for binary classifiers.

A calibrated model's score ``p`` is the probability that the row is positive, so each row
is expected to add ``p`` to the positives and ``1 - p`` to the negatives. Summing those
expectations over a window gives its expected confusion matrix at any threshold, hence
expected precision and recall at the decision threshold, and an expected ROC curve whose
area is the estimated ROC AUC (NannyML's CBPE, with tied scores counted half as the
realized AUC counts them, and a row never paired with itself).

The estimate is only as good as the calibration: it assumes ``P(y=1 | score) = score``
still holds in the window (true under covariate shift, false under concept drift, which
only labels can show). A model whose scores are not calibrated probabilities is first
mapped through a :class:`Calibration` learned on labelled reference records
(:func:`fit_calibration`: the share of positives in quantile bins of the score, which,
unlike an isotonic fit, keeps a stretch where a higher score is *less* often positive, so
the estimate sees what the model's own ranking will realize); the rows are still ranked
by the model's own scores.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.beta(0.5, 5, 20_000)
>>> y = rng.random(20_000) < p
>>> est = estimate_binary_performance(p, threshold=0.5)
>>> from driftloop.stats import roc_auc
>>> abs(est["roc_auc"] - roc_auc(y, p)) < 0.01
True
>>> sorted(est)
['mean_score', 'positive_rate', 'precision_at_0.5', 'recall_at_0.5', 'roc_auc', 'rows']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftloop.core.errors import InvalidParameterError

__all__ = ["Calibration", "estimate_binary_performance", "estimated_roc_auc", "fit_calibration"]


def _probabilities(scores: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(scores, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise InvalidParameterError(
            "Confidence-based estimation needs probabilities in [0, 1]; got scores from "
            f"{p.min():g} to {p.max():g}."
        )
    return p


@dataclass(frozen=True, eq=False)
class Calibration:
    """Scores to probabilities: a score below ``edges[0]`` is positive with probability
    ``rates[0]``, one in ``[edges[i-1], edges[i])`` with ``rates[i]``, one at or above
    ``edges[-1]`` with ``rates[-1]`` (``len(rates) == len(edges) + 1``)."""

    edges: NDArray[np.float64]
    rates: NDArray[np.float64]

    def __call__(self, scores: ArrayLike) -> NDArray[np.float64]:
        s = np.asarray(scores, dtype=np.float64)
        out = self.rates[np.searchsorted(self.edges, np.nan_to_num(s), side="right")]
        return np.where(np.isfinite(s), out, np.nan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"edges": self.edges.tolist(), "rates": self.rates.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        edges = np.asarray(data["edges"], dtype=np.float64)
        rates = np.asarray(data["rates"], dtype=np.float64)
        if rates.size != edges.size + 1:
            raise InvalidParameterError(
                f"A calibration has one rate more than edges; got {rates.size} and {edges.size}."
            )
        return cls(edges, rates)


def fit_calibration(scores: ArrayLike, labels: ArrayLike, *, bins: int = 20) -> Calibration:
    """The share of positives among labelled rows in ``bins`` quantile bins of their
    scores (rows with a NaN score or label left out), each shrunk toward the overall share
    by one row's weight so that a bin without positives is not certain.

    >>> cal = fit_calibration([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], bins=2)
    >>> cal([0.0, 0.35]).round(2).tolist()
    [0.17, 0.83]
    """
    if bins < 1:
        raise InvalidParameterError(f"'bins' must be >= 1; got {bins}.")
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    known = np.isfinite(s) & np.isfinite(y)
    s, y = s[known], (y[known] > 0.5).astype(np.float64)
    if s.size == 0:
        raise InvalidParameterError("A calibration needs labelled rows with scores; got none.")
    edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    index = np.searchsorted(edges, s, side="right")
    rows = np.bincount(index, minlength=edges.size + 1)
    positives = np.bincount(index, weights=y, minlength=edges.size + 1)
    return Calibration(edges, (positives + y.mean()) / (rows + 1.0))


def estimated_roc_auc(probabilities: ArrayLike, scores: ArrayLike | None = None) -> float:
    """The expected ROC AUC of a model ranking rows by ``scores`` when row ``i`` is
    positive with probability ``probabilities[i]`` (the calibrated scores; by default the
    scores are those probabilities). NaN with fewer than two rows, or when every
    probability is 0 or every one is 1 (one class is certainly absent).

    Each ordered pair of different rows ``(i, j)`` counts ``p_i (1 - p_j)`` (the chance
    that ``i`` is a positive and ``j`` a negative), scored 1 when ``s_i > s_j`` and 1/2 on
    a tie; the estimate is their weighted share. Ranking by the model's own scores, not by
    calibrated ones that pool rows into ties, estimates the AUC the model will realize.

    >>> estimated_roc_auc([0.0, 1.0])
    1.0
    >>> estimated_roc_auc([0.5, 0.5, 0.5])
    0.5
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    s = p if scores is None else np.asarray(scores, dtype=np.float64).ravel()
    if s.shape != p.shape:
        raise InvalidParameterError(
            f"'scores' and 'probabilities' must have the same length; got {s.size} and {p.size}."
        )
    known = np.isfinite(p) & np.isfinite(s)
    p = _probabilities(p[known])
    if p.size < 2:
        return math.nan
    values, inverse = np.unique(s[known], return_inverse=True)  # ascending distinct scores
    pos = np.bincount(inverse, weights=p, minlength=values.size)
    neg = np.bincount(inverse, weights=1.0 - p, minlength=values.size)
    neg_below = np.cumsum(neg) - neg  # negatives' weight at strictly lower scores
    # pairs (positive at this score, negative below) plus half of the ties at this score
    wins = float(np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg))
    own = float(np.sum(p * (1.0 - p)))  # a row paired with itself: a tie, left out
    pairs = float(pos.sum() * neg.sum()) - own
    if pairs <= 0:
        return math.nan
    return float(np.clip((wins - 0.5 * own) / pairs, 0.0, 1.0))


def estimate_binary_performance(
    scores: ArrayLike, *, threshold: float = 0.5, calibration: Calibration | None = None
) -> dict[str, float]:
    """Expected metrics of a window of ``scores`` (NaN ones left out), calibrated ones or
    mapped through ``calibration``, named as :func:`~driftloop.stats.evaluate` names the
    realized ones: ``roc_auc``, ``precision_at_{t}`` and ``recall_at_{t}`` (rows flagged
    when ``score >= t``, by the model's own score), the expected ``positive_rate``, the
    ``mean_score`` and ``rows``. A metric that is undefined (no row flagged, no expected
    positive) is NaN."""
    if not 0.0 <= threshold <= 1.0:
        raise InvalidParameterError(f"'threshold' must be in [0, 1]; got {threshold}.")
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    p = _probabilities(calibration(s) if calibration is not None else s)
    flagged = s >= threshold
    tp = float(p[flagged].sum())
    positives = float(p.sum())
    return {
        "rows": float(p.size),
        "roc_auc": estimated_roc_auc(p, s),
        f"precision_at_{threshold:g}": tp / int(flagged.sum()) if flagged.any() else math.nan,
        f"recall_at_{threshold:g}": tp / positives if positives > 0 else math.nan,
        "positive_rate": float(p.mean()) if p.size else math.nan,
        "mean_score": float(s.mean()) if s.size else math.nan,
    }
