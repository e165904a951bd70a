"""A window's performance estimated before its labels arrive (CBPE, binary models).

:func:`estimated_performance` reads a window's scores as calibrated probabilities and
gives the expected ROC AUC, precision and recall at the decision threshold
(:func:`driftloop.stats.estimate_binary_performance`) as a :class:`Performance` whose
``labelled`` is the number of scores it read. It does not apply, and says why, to
regression and multiclass models, to records without scores, to scores outside [0, 1],
and to a version whose held-out expected calibration error is above ``max_ece`` (its
scores are not probabilities to be trusted one by one). Without a calibration the monitor
also backtests the estimator on the version's held-out scores (:func:`held_out_gap`): an
estimate that misses the ROC AUC realized there by more than ``max_auc_drop`` is not
made.

:func:`reference_estimate` gives the same estimate on the reference's held-out scores (the
sample its profile keeps): with fixed thresholds a window's estimate is compared with it,
not with the realized reference metric, so that what miscalibration remains biases both
alike.

>>> import numpy as np, pandas as pd
>>> window = pd.DataFrame({"score": np.linspace(0.0, 1.0, 101)})
>>> est, note = estimated_performance(window, task="binary", threshold=0.5)
>>> round(est.roc_auc, 3), note
(0.839, '')
>>> estimated_performance(window, task="regression", threshold=0.5)[1]
'performance estimation does not apply to regression models (it needs the calibrated scores of a binary classifier)'
"""  # noqa: E501

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.monitoring._performance import Performance
from driftloop.stats import Calibration, Profile, estimate_binary_performance

__all__ = ["ESTIMATED", "estimated_performance", "held_out_gap", "reference_estimate"]

ESTIMATED = ("roc_auc", "precision", "recall")
"""What a report shows of an estimate (precision and recall at the decision threshold)."""


def estimated_performance(
    records: pd.DataFrame,
    *,
    task: str,
    threshold: float,
    score: str = "score",
    ece: float = math.nan,
    max_ece: float = 1.0,
    calibration: Calibration | None = None,
) -> tuple[Performance | None, str]:
    """The window's estimated performance, or None and a note saying why there is none.
    ``calibration``: learned on the reference period (then ``ece``, the version's held-out
    expected calibration error, does not matter); without it the scores are taken as
    probabilities, if ``ece`` is at most ``max_ece``."""
    if task != "binary":
        return None, (
            f"performance estimation does not apply to {task} models (it needs the "
            "calibrated scores of a binary classifier)"
        )
    if score not in records.columns:
        return None, f"performance not estimated: the records have no '{score}' column"
    if calibration is None and math.isfinite(ece) and ece > max_ece:
        return None, (
            f"performance not estimated: the version's held-out ECE {ece:.3f} is above "
            f"monitoring.estimation_max_ece {max_ece:g} (CBPE needs calibrated scores)"
        )
    scores = records[score].to_numpy(dtype=np.float64, na_value=np.nan)
    return _estimate(scores, threshold, "scores", calibration)


def reference_estimate(
    profile: Profile, threshold: float, calibration: Calibration | None = None
) -> Performance | None:
    """The estimate on the held-out scores the reference profile keeps (None without)."""
    if profile.prediction is None or profile.prediction.sample.size == 0:
        return None
    found, _ = _estimate(profile.prediction.sample, threshold, "held-out scores", calibration)
    return found


def held_out_gap(estimate: Performance | None, realized: Performance) -> float:
    """How far the estimated ROC AUC on held-out scores is from the one realized there
    (NaN when either is unknown): the estimator's own backtest."""
    if estimate is None:
        return math.nan
    return abs(estimate.roc_auc - realized.roc_auc)


def _estimate(
    scores: NDArray[np.float64], threshold: float, what: str, calibration: Calibration | None
) -> tuple[Performance | None, str]:
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        return None, "performance not estimated: no record has a score"
    if calibration is None and (scores.min() < 0.0 or scores.max() > 1.0):
        return None, (
            "performance not estimated: the scores are not probabilities (from "
            f"{scores.min():g} to {scores.max():g})"
        )
    metrics = estimate_binary_performance(scores, threshold=threshold, calibration=calibration)
    rows = int(metrics.pop("rows"))
    kept = {k: v for k, v in metrics.items() if math.isfinite(v)}
    expected = rows * kept.get("positive_rate", 0.0)
    counts = {"0": round(rows - expected), "1": round(expected)}
    how = (
        "calibrated on the reference period"
        if calibration is not None
        else "assumes the scores are calibrated"
    )
    note = f"estimated from {rows:,} {what} (CBPE, {how})"
    return Performance("binary", rows, kept, counts, threshold, note), ""
