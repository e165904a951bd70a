"""Evaluation on the held-out test window: quality, calibration, segments, latency."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InsufficientDataError
from driftloop.registry import LoadedModel
from driftloop.stats import (
    brier_score,
    expected_calibration_error,
    pr_auc,
    precision_recall_at,
    recall_at_fpr,
    roc_auc,
)

__all__ = ["evaluate_scores", "per_row_latency_ms", "segment_metrics"]


def evaluate_scores(
    y: NDArray[Any],
    scores: NDArray[np.float64],
    *,
    max_fpr: float,
    threshold: float | None = None,
) -> dict[str, float]:
    """ROC AUC, PR AUC, recall at ``max_fpr``, Brier score, ECE and the mean score; with
    ``threshold`` (monitoring's decision threshold) also the precision and recall of
    flagging ``score >= threshold`` where defined: the baseline monitoring compares with."""
    out = {
        "roc_auc": roc_auc(y, scores),
        "pr_auc": pr_auc(y, scores),
        f"recall_at_fpr_{max_fpr:g}": recall_at_fpr(y, scores, max_fpr),
        "brier": brier_score(y, scores),
        "ece": expected_calibration_error(y, scores),
        "rows": float(len(y)),
        "positive_rate": float(np.mean(y)),
        "mean_score": float(np.mean(scores)),
    }
    if threshold is not None:
        pair = precision_recall_at(y, scores, threshold)
        at = dict(zip(("precision", "recall"), pair, strict=True))
        out.update({f"{k}_at_{threshold:g}": v for k, v in at.items() if np.isfinite(v)})
    return out


def segment_metrics(
    y: NDArray[Any], scores: NDArray[np.float64], segments: pd.Series, *, max_fpr: float
) -> dict[str, dict[str, float]]:
    """The same metrics per segment; a segment with one class only reports its counts."""
    out: dict[str, dict[str, float]] = {}
    values = segments.astype(str).to_numpy()
    for name in sorted(set(values)):
        mask = values == name
        try:
            out[name] = evaluate_scores(y[mask], scores[mask], max_fpr=max_fpr)
        except InsufficientDataError:
            out[name] = {"rows": float(mask.sum()), "positive_rate": float(np.mean(y[mask]))}
    return out


def per_row_latency_ms(model: LoadedModel, X: pd.DataFrame, rows: int = 300) -> dict[str, float]:
    """Time to score one row at a time (what one online request costs), p50 and p99 in ms."""
    matrix = X.head(rows).to_numpy(dtype=np.float64)
    model.predict_batch(matrix[:1])  # warm up
    timings = np.empty(len(matrix))
    for i in range(len(matrix)):
        start = time.perf_counter()
        model.predict_batch(matrix[i : i + 1])
        timings[i] = (time.perf_counter() - start) * 1000.0
    return {
        "latency_p50_ms": float(np.percentile(timings, 50)),
        "latency_p99_ms": float(np.percentile(timings, 99)),
    }
