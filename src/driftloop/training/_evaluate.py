"""Evaluation on the held-out test window: the task's metrics, per segment, and latency.

The latency is measured so that a loaded machine cannot flip it: one-row calls in
several rounds, each round's median, and the best round kept (a busy neighbour slows
some rounds, not the model).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InsufficientDataError
from driftloop.registry import LoadedModel
from driftloop.stats import evaluate

__all__ = ["evaluate_model", "latency_ms", "segment_metrics"]


def evaluate_model(
    model: LoadedModel, frame: pd.DataFrame, y: NDArray[Any], *, threshold: float
) -> dict[str, Any]:
    """Every metric of the model's task on ``frame`` (inputs) against labels ``y``."""
    return dict(evaluate(model.predict_frame(frame), y, threshold=threshold))


def segment_metrics(
    model: LoadedModel,
    frame: pd.DataFrame,
    y: NDArray[Any],
    segments: pd.Series,
    *,
    threshold: float,
) -> dict[str, dict[str, float]]:
    """The same metrics per segment (metrics a segment cannot define are left out)."""
    outputs = model.predict_frame(frame)
    values = segments.astype(str).to_numpy()
    out: dict[str, dict[str, float]] = {}
    for name in sorted(set(values)):
        mask = values == name
        try:
            out[name] = evaluate(outputs.take(mask), y[mask], threshold=threshold)
        except InsufficientDataError:
            out[name] = {"rows": float(mask.sum())}
    return out


def latency_ms(
    model: LoadedModel, matrix: NDArray[np.float64], *, rounds: int = 7, calls: int = 30
) -> dict[str, float]:
    """One-row scoring time in ms: the best of ``rounds`` medians of ``calls`` calls each
    (``latency_ms``), and the median over all calls (``latency_median_ms``)."""
    rows = matrix[: max(1, min(len(matrix), calls))]
    model.predict(rows[:1])  # warm up
    timings = np.empty((rounds, calls))
    for r in range(rounds):
        for c in range(calls):
            row = rows[c % len(rows) : c % len(rows) + 1]
            start = time.perf_counter()
            model.predict(row)
            timings[r, c] = (time.perf_counter() - start) * 1000.0
    medians = np.median(timings, axis=1)
    return {"latency_ms": float(medians.min()), "latency_median_ms": float(np.median(timings))}
