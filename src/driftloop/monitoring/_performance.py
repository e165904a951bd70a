"""Realized performance of a model on the records whose labels have arrived, for its task.

Every number comes from :func:`driftloop.stats.evaluate`, the function the training
pipeline evaluates the held-out split with, so a window's metrics and the registered
version's are computed alike (with their standard errors, ``<metric>_se``). Labels are
encoded as the audit log keeps them: binary 0/1, multiclass the class index in the
version's classes, regression the value.

>>> import numpy as np
>>> p = realized_performance(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]),
...                          threshold=0.5)
>>> p.roc_auc, p.precision, p.recall
(0.75, 1.0, 0.5)
>>> r = realized_performance(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]),
...                          task="regression")
>>> round(r.get("mae"), 3), "recall" in r.display()
(0.5, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.monitoring._outputs import class_probabilities, predicted_classes
from driftloop.stats import TASKS, Outputs, evaluate

__all__ = ["Performance", "metric_label", "realized_performance", "window_performance"]

_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "ece": "ECE",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}
# What a report shows per task after the model's own metric (recall/precision: at the
# decision threshold).
_SHOWN = {
    "binary": ("roc_auc", "recall", "precision", "ece", "log_loss"),
    "multiclass": ("log_loss", "accuracy", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
}


def metric_label(name: str) -> str:
    """How a report names a metric: ``ROC AUC``, ``RMSE``, ``recall`` (at the threshold),
    ``recall of pro`` (one class)."""
    if name.startswith(("recall_at_", "precision_at_")):
        return name.split("_at_")[0]
    if name.startswith("recall:"):
        return f"recall of {name.removeprefix('recall:')}"
    return _LABELS.get(name, name)


@dataclass(frozen=True)
class Performance:
    """A model's metrics on ``labelled`` records, by the names :func:`~driftloop.stats.
    evaluate` gives them (with ``<metric>_se`` standard errors); a metric that is
    undefined (AUC with one class) or unavailable (log loss without class probabilities)
    is absent and reads as NaN. ``counts`` are the labelled records per class;
    ``threshold`` the decision threshold of a binary model's precision and recall;
    ``note`` says what could not be computed and why."""

    task: str
    labelled: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    threshold: float = 0.5
    note: str = ""

    def get(self, name: str) -> float:
        """One metric (``"recall"``/``"precision"`` at the threshold), NaN when absent."""
        if name in ("recall", "precision"):
            name = f"{name}_at_{self.threshold:g}"
        return float(self.metrics.get(name, math.nan))

    def se(self, name: str) -> float:
        """The standard error of one metric, NaN when unknown."""
        return self.get(f"{name}_se")

    @property
    def roc_auc(self) -> float:
        return self.get("roc_auc")

    @property
    def precision(self) -> float:
        return self.get("precision")

    @property
    def recall(self) -> float:
        return self.get("recall")

    @property
    def ece(self) -> float:
        return self.get("ece")

    @property
    def mean_score(self) -> float:
        return self.get("mean_score")

    @property
    def positive_rate(self) -> float:
        return self.get("positive_rate")

    @property
    def positives(self) -> int:
        """Labelled records of the positive class (binary; 0 otherwise)."""
        rate = self.positive_rate
        return round(self.labelled * rate) if self.task == "binary" and math.isfinite(rate) else 0

    def display(self, first: str | None = None) -> list[str]:
        """The metrics a report shows, ``first`` (the model's metric) first, those known."""
        names = dict.fromkeys([*([first] if first else []), *_SHOWN.get(self.task, ())])
        return [n for n in names if math.isfinite(self.get(n))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (finite metrics only)."""
        return {
            "task": self.task,
            "labelled": self.labelled,
            "metrics": {k: float(v) for k, v in self.metrics.items() if math.isfinite(v)},
            "counts": {k: int(v) for k, v in self.counts.items()},
            "threshold": self.threshold,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Performance:
        """Read what :meth:`to_dict` wrote, or the flat binary form of earlier versions
        (``labelled, positives, roc_auc, precision, recall, ece, mean_score,
        positive_rate``, precision and recall at 0.5)."""
        if "metrics" in data:
            return cls(
                task=str(data.get("task", "binary")),
                labelled=int(data["labelled"]),
                metrics=_finite(data["metrics"]),
                counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
                threshold=float(data.get("threshold", 0.5)),
                note=str(data.get("note", "")),
            )
        threshold = float(data.get("threshold", 0.5))
        names = {
            "roc_auc": "roc_auc",
            "ece": "ece",
            "mean_score": "mean_score",
            "positive_rate": "positive_rate",
            "precision": f"precision_at_{threshold:g}",
            "recall": f"recall_at_{threshold:g}",
        }
        metrics = _finite({new: data[old] for old, new in names.items() if old in data})
        labelled = int(data["labelled"])
        positives = int(data.get("positives", 0))
        counts = {"0": labelled - positives, "1": positives} if labelled else {}
        return cls("binary", labelled, metrics, counts, threshold)


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


def realized_performance(
    scores: NDArray[np.float64] | pd.Series,
    labels: NDArray[np.float64] | pd.Series,
    *,
    threshold: float = 0.5,
    task: str = "binary",
    classes: Sequence[str] = (),
    probabilities: NDArray[np.float64] | None = None,
    predicted: NDArray[np.intp] | None = None,
) -> Performance:
    """The task's metrics of :func:`~driftloop.stats.evaluate` on the labelled records
    (unlabelled, NaN, ones are left out).

    ``scores`` are binary's positive probabilities or regression's values. A multiclass
    model is judged from ``probabilities`` (rows x classes, in the order of ``classes``)
    or, without them, from the ``predicted`` class indexes (-1: unknown): accuracy,
    macro F1 and per-class recall, with log loss unavailable (said in the ``note``).
    """
    y = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(y)
    if task == "multiclass":
        return _multiclass(y, known, classes, probabilities, predicted)
    s = np.asarray(scores, dtype=np.float64)
    known &= np.isfinite(s)
    if task == "regression":
        outputs, target = Outputs("regression", s[known]), y[known]
        counts: dict[str, int] = {}
    else:
        names = tuple(classes) if len(classes) == 2 else ("0", "1")
        target = (y[known] > 0.5).astype(np.int8)
        outputs = Outputs("binary", s[known], names)
        positives = int(target.sum())
        counts = {names[0]: len(target) - positives, names[1]: positives}
    if len(target) == 0:
        return Performance(task, 0, threshold=threshold)
    return _performance(task, evaluate(outputs, target, threshold=threshold), counts, threshold)


def _performance(
    task: str,
    metrics: Mapping[str, float],
    counts: Mapping[str, int],
    threshold: float,
    note: str = "",
) -> Performance:
    rows = int(metrics["rows"])
    kept = {k: v for k, v in metrics.items() if k != "rows"}
    return Performance(task, rows, _finite(kept), dict(counts), threshold, note)


def _multiclass(
    y: NDArray[np.float64],
    known: NDArray[np.bool_],
    classes: Sequence[str],
    probabilities: NDArray[np.float64] | None,
    predicted: NDArray[np.intp] | None,
) -> Performance:
    k = len(classes) or (probabilities.shape[1] if probabilities is not None else 0)
    names = tuple(classes) or tuple(str(i) for i in range(k))
    valid = known & (y >= 0) & (y < k) & (np.mod(np.where(known, y, 0), 1) == 0)
    notes = []
    drop: tuple[str, ...] = ()
    outside = int((known & ~valid).sum())
    if outside:
        notes.append(f"{outside} label(s) outside the model's {k} classes left out")
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64)
        rows = valid & np.isfinite(p).all(axis=1)
        raw = p[rows]
    elif predicted is not None:
        chosen = np.asarray(predicted, dtype=np.intp)
        rows = valid & (chosen >= 0) & (chosen < k)
        raw = np.eye(k, dtype=np.float64)[chosen[rows]] if k else np.zeros((0, 0))
        drop = ("log_loss", "log_loss_se")  # one-hot "probabilities" say nothing of it
        notes.append("log loss unavailable (the records carry no class probabilities)")
    else:
        rows = np.zeros_like(valid)
        raw = np.zeros((0, k))
        notes.append("no predicted class in the records")
    target = y[rows].astype(np.intp)
    counts = {names[i]: int(c) for i, c in enumerate(np.bincount(target, minlength=k)) if c}
    note = "; ".join(notes)
    if len(target) == 0:
        return Performance("multiclass", 0, counts=counts, note=note)
    metrics = evaluate(Outputs("multiclass", raw, names), target)
    kept = {key: value for key, value in metrics.items() if key not in drop}
    return _performance("multiclass", kept, counts, 0.5, note)


def window_performance(
    records: pd.DataFrame,
    *,
    task: str,
    classes: Sequence[str] = (),
    threshold: float = 0.5,
    min_labelled: int = 1,
    score: str = "score",
    label: str = "label",
) -> Performance | None:
    """Realized performance of a window of records, None with fewer than ``min_labelled``
    labels (or without ``score`` and ``label`` columns). A multiclass window is judged
    from its records' class probabilities (``outputs``) when every labelled record has
    them, else from their predicted class (``outputs["class"]`` or ``decision``)."""
    if score not in records.columns or label not in records.columns:
        return None
    labels = records[label].to_numpy(dtype=np.float64, na_value=np.nan)
    known = ~np.isnan(labels)
    if int(known.sum()) < min_labelled:
        return None
    if task not in TASKS:
        task = "binary"
    if task != "multiclass":
        scores = records[score].to_numpy(dtype=np.float64, na_value=np.nan)
        return realized_performance(scores, labels, threshold=threshold, task=task, classes=classes)
    labelled = records.loc[known]
    probabilities = class_probabilities(labelled, classes)
    predicted = None
    if probabilities is None:
        names = predicted_classes(labelled, classes)
        if names is not None:
            index = pd.Index(list(classes), dtype=object)
            predicted = index.get_indexer(pd.Index(names.to_numpy(dtype=object))).astype(np.intp)
    return realized_performance(
        labelled[score].to_numpy(dtype=np.float64, na_value=np.nan),
        labels[known],
        task="multiclass",
        classes=classes,
        probabilities=probabilities,
        predicted=predicted,
    )
