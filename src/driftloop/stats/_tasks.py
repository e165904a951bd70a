"""Tasks: what a model predicts, how it is judged, and the trivial model it must beat.

Three tasks, each with its metrics, its default metric and its baseline (the prior or the
mean, fitted on the training labels): ``binary`` (outputs: the positive class's
probability), ``multiclass`` (one probability per class) and ``regression`` (a value).
Labels are encoded before they reach these functions: 0/1 for binary, the class index for
multiclass, the number for regression (see :func:`encode_labels`).

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> out = Outputs("binary", np.array([0.1, 0.4, 0.35, 0.8]), ("no", "yes"))
>>> metrics = evaluate(out, y)
>>> metrics["roc_auc"], metrics["accuracy"]
(0.75, 0.75)
>>> base = baseline(TASKS["binary"], y, classes=2).outputs(4)
>>> round(skill("roc_auc", metrics["roc_auc"], evaluate(base, y)["roc_auc"]), 3)
0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InsufficientDataError, InvalidParameterError, SchemaMismatchError
from driftloop.stats._metrics import (
    brier_score,
    expected_calibration_error,
    pr_auc,
    precision_recall_at,
    roc_auc,
)

__all__ = [
    "METRICS",
    "TASKS",
    "Baseline",
    "Metric",
    "Outputs",
    "TaskName",
    "TaskSpec",
    "baseline",
    "category_text",
    "encode_labels",
    "evaluate",
    "infer_task",
    "skill",
]

TaskName = Literal["binary", "multiclass", "regression"]
_EPS = 1e-15
MAX_CLASSES = 50
"""Most classes a label may have to be inferred multiclass (more: regression or refused)."""


@dataclass(frozen=True)
class Metric:
    """A metric's direction and its perfect value (1 for AUC and accuracy, 0 for errors)."""

    name: str
    higher_is_better: bool
    per_row: bool  # a mean over rows: its standard error is the rows' std / sqrt(n)

    @property
    def perfect(self) -> float:
        return 1.0 if self.higher_is_better else 0.0

    def better(self, value: float, than: float) -> bool:
        return value > than if self.higher_is_better else value < than


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", True, False),
        Metric("pr_auc", True, False),
        Metric("log_loss", False, True),
        Metric("brier", False, True),
        Metric("ece", False, False),
        Metric("accuracy", True, True),
        Metric("macro_f1", True, False),
        Metric("rmse", False, False),
        Metric("mae", False, True),
        Metric("r2", True, False),
    )
}


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, the metric gates and the loop judge on by default, and every
    metric :func:`evaluate` reports for it."""

    name: TaskName
    default_metric: str
    metrics: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    "binary": TaskSpec(
        "binary", "roc_auc", ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "accuracy")
    ),
    "multiclass": TaskSpec("multiclass", "log_loss", ("log_loss", "accuracy", "macro_f1")),
    "regression": TaskSpec("regression", "rmse", ("rmse", "mae", "r2")),
}


@dataclass(frozen=True)
class Outputs:
    """A model's outputs for ``n`` rows: ``raw`` is the positive class's probability
    (binary, shape n), the probability of each class (multiclass, n x classes) or the
    value (regression, shape n); ``classes`` names the classes (none for regression)."""

    task: str
    raw: NDArray[np.float64]
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.raw.shape[0])

    @property
    def score(self) -> NDArray[np.float64]:
        """One number per row: the positive probability, the top class's probability, or
        the value (what the audit log's ``score`` column and drift of outputs use)."""
        if self.raw.ndim == 2:
            top: NDArray[np.float64] = self.raw.max(axis=1)
            return top
        return self.raw

    @property
    def class_index(self) -> NDArray[np.intp]:
        """The most probable class of each row (binary: probability >= 0.5)."""
        if self.task == "multiclass":
            return np.asarray(self.raw.argmax(axis=1), dtype=np.intp)
        if self.task == "binary":
            return (self.raw >= 0.5).astype(np.intp)
        raise InvalidParameterError("A regression model has no classes.")

    def take(self, rows: NDArray[Any] | slice) -> Outputs:
        return Outputs(self.task, self.raw[rows], self.classes)


def infer_task(label: pd.Series, *, name: str = "label") -> tuple[TaskName, str]:
    """The task a label column implies, and the reason, said plainly.

    Booleans and any column of two distinct values are binary; strings (up to
    ``MAX_CLASSES`` values) multiclass; integers with few distinct values (at most 20, and
    fewer than 5% of rows) multiclass; other numbers regression.

    >>> infer_task(pd.Series([0.5, 1.25, 3.0, 2.5]))[0]
    'regression'
    >>> infer_task(pd.Series(["a", "b", "c", "a"]))
    ('multiclass', "label 'label' has 3 distinct values (a, b, c)")
    """
    values = label.dropna()
    if values.empty:
        raise InsufficientDataError(f"Label column '{name}' has no values (every row is null).")
    distinct = values.unique()
    shown = ", ".join(str(v) for v in sorted(distinct, key=str)[:5])
    more = ", ..." if len(distinct) > 5 else ""
    if len(distinct) < 2:
        raise InsufficientDataError(
            f"Label column '{name}' has one value only ({shown}); a model needs at least two "
            "classes or a range of values to learn from."
        )
    what = f"label '{name}' has {len(distinct)} distinct values ({shown}{more})"
    if len(distinct) == 2:
        return "binary", what
    if pd.api.types.is_bool_dtype(values):
        return "binary", what
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        whole = bool(np.all(np.mod(numbers, 1) == 0))
        if whole and len(distinct) <= 20 and len(distinct) < 0.05 * len(values):
            return "multiclass", what + ", few whole numbers"
        return "regression", f"label '{name}' holds numbers ({len(distinct)} distinct values)"
    if len(distinct) <= MAX_CLASSES:
        return "multiclass", what
    raise SchemaMismatchError(
        f"Label column '{name}' holds text with {len(distinct)} distinct values; more than "
        f'{MAX_CLASSES} classes is not supported. Declare task = "regression" if the values '
        "are numbers stored as text, or group the classes."
    )


def encode_labels(
    label: pd.Series, task: str, classes: Sequence[str] | None = None, *, name: str = "label"
) -> tuple[NDArray[Any], tuple[str, ...]]:
    """Labels as numbers for ``task`` and the class names (sorted as text unless
    ``classes`` is given: then values outside it are refused). Binary's positive class is
    the second: ``True``, ``1`` or, for text, the later in sort order unless ``classes``
    says otherwise.

    >>> encode_labels(pd.Series(["yes", "no", "yes"]), "binary")
    (array([1, 0, 1], dtype=int8), ('no', 'yes'))
    """
    if label.isna().any():
        raise SchemaMismatchError(
            f"Label column '{name}' has {int(label.isna().sum())} null value(s); drop those "
            "rows or fill them before training."
        )
    if task == "regression":
        try:
            return label.to_numpy(dtype=np.float64), ()
        except (TypeError, ValueError):
            raise SchemaMismatchError(
                f"Label column '{name}' is {label.dtype}; a regression label must be numbers."
            ) from None
    if task not in ("binary", "multiclass"):
        raise InvalidParameterError(
            f"Task {task!r} is not one of {', '.join(TASKS)} (or 'auto' to infer it)."
        )
    text = label.map(category_text)
    seen = sorted(set(text), key=_class_order)
    known = tuple(classes) if classes is not None else tuple(seen)
    index = {c: i for i, c in enumerate(known)}
    unknown = [c for c in seen if c not in index]
    if unknown:
        raise SchemaMismatchError(
            f"Label column '{name}' has value(s) {', '.join(unknown[:5])} outside the classes "
            f"{', '.join(known)}."
        )
    if task == "binary" and len(known) != 2:
        raise SchemaMismatchError(
            f"A binary label needs exactly two classes; '{name}' has {len(known)} "
            f'({", ".join(known[:5])}). Declare task = "multiclass" for more.'
        )
    dtype = np.int8 if task == "binary" else np.int32
    return text.map(index).to_numpy(dtype=dtype), known


def category_text(value: Any) -> str:
    """How a class or category value is spelt: ``True``/``False`` as ``true``/``false``,
    whole numbers without ``.0``, text as is; so CSV, Parquet and JSON spell it the same.

    >>> [category_text(v) for v in (True, 3.0, 7, "a")]
    ['true', '3', '7', 'a']
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _class_order(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order, ``false`` before ``true``, other text alphabetically."""
    if name in ("false", "true"):
        return (0, float(name == "true"), name)
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


@dataclass(frozen=True)
class Baseline:
    """The trivial model of a task: the training labels' prior (classes) or mean (values)."""

    task: TaskSpec
    value: NDArray[np.float64]  # binary: [p]; multiclass: one prior per class; regression: [mean]
    classes: tuple[str, ...]

    def outputs(self, n: int) -> Outputs:
        if self.task.name == "multiclass":
            return Outputs("multiclass", np.tile(self.value, (n, 1)), self.classes)
        return Outputs(self.task.name, np.full(n, float(self.value[0])), self.classes)


def baseline(
    task: TaskSpec, y_train: NDArray[Any], *, classes: int | Sequence[str] = ()
) -> Baseline:
    """The prior (binary, multiclass) or the mean (regression) of ``y_train``."""
    y = np.asarray(y_train)
    names = tuple(classes) if not isinstance(classes, int) else tuple(map(str, range(classes)))
    if task.name == "regression":
        return Baseline(task, np.array([float(np.mean(y))]), ())
    if task.name == "binary":
        return Baseline(task, np.array([float(np.mean(y))]), names)
    counts = np.bincount(y.astype(np.intp), minlength=len(names)).astype(np.float64)
    return Baseline(task, counts / max(counts.sum(), 1.0), names)


def skill(metric: str, value: float, base: float) -> float:
    """The share of the gap between the trivial baseline and a perfect score that the
    model closes: 0 for no better than the baseline, 1 for perfect, negative for worse.

    >>> skill("rmse", 5.0, 10.0), skill("roc_auc", 0.75, 0.5)
    (0.5, 0.5)
    """
    gap = METRICS[metric].perfect - base
    if not math.isfinite(value) or not math.isfinite(base) or abs(gap) < 1e-12:
        return math.nan
    return (value - base) / gap


def evaluate(outputs: Outputs, y: NDArray[Any], *, threshold: float = 0.5) -> dict[str, float]:
    """Every metric of the outputs' task on labels ``y`` (encoded), with ``rows`` and,
    per metric, its standard error as ``<metric>_se`` (what a later window's drop is
    judged against)."""
    y = np.asarray(y)
    if len(y) != len(outputs):
        raise InvalidParameterError(
            f"Labels and outputs must have the same length; got {len(y)} and {len(outputs)}."
        )
    if len(y) == 0:
        raise InsufficientDataError("Cannot evaluate a model on zero rows.")
    if outputs.task == "binary":
        return _binary(outputs.raw, y.astype(np.int8), threshold)
    if outputs.task == "multiclass":
        return _multiclass(outputs.raw, y.astype(np.intp), outputs.classes)
    return _regression(outputs.raw, y.astype(np.float64))


def _binary(p: NDArray[np.float64], y: NDArray[np.int8], threshold: float) -> dict[str, float]:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    losses = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    correct = ((p >= threshold) == (y == 1)).astype(np.float64)
    squared = (p - y) ** 2
    out = {
        "rows": float(len(y)),
        "positive_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        "log_loss": float(losses.mean()),
        "log_loss_se": _se(losses),
        "brier": brier_score(y, p),
        "brier_se": _se(squared),
        "ece": expected_calibration_error(y, p),
        "accuracy": float(correct.mean()),
        "accuracy_se": _se(correct),
    }
    positives = int(y.sum())
    if 0 < positives < len(y):
        auc = roc_auc(y, p)
        out["roc_auc"] = auc
        out["roc_auc_se"] = auc_standard_error(auc, positives, len(y) - positives)
        out["pr_auc"] = pr_auc(y, p)
    precision, recall = precision_recall_at(y, p, threshold)
    at = {f"precision_at_{threshold:g}": precision, f"recall_at_{threshold:g}": recall}
    out.update({key: value for key, value in at.items() if math.isfinite(value)})
    return out


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil (1982) standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / max(positives * negatives, 1)
    return math.sqrt(max(var, 0.0))


def _multiclass(
    p: NDArray[np.float64], y: NDArray[np.intp], classes: tuple[str, ...]
) -> dict[str, float]:
    k = p.shape[1]
    if y.size and (y.min() < 0 or y.max() >= k):
        raise InvalidParameterError(f"Class indexes must be in [0, {k}); got {y.min()}..{y.max()}.")
    chosen = np.clip(p[np.arange(len(y)), y], _EPS, 1.0)
    losses = -np.log(chosen)
    predicted = p.argmax(axis=1)
    correct = (predicted == y).astype(np.float64)
    out = {
        "rows": float(len(y)),
        "log_loss": float(losses.mean()),
        "log_loss_se": _se(losses),
        "accuracy": float(correct.mean()),
        "accuracy_se": _se(correct),
    }
    f1s = []
    for c in range(k):
        true_c, pred_c = y == c, predicted == c
        hits = float((true_c & pred_c).sum())
        support, flagged = float(true_c.sum()), float(pred_c.sum())
        name = classes[c] if c < len(classes) else str(c)
        if support:
            out[f"recall:{name}"] = hits / support
        if support or flagged:
            f1s.append(2 * hits / (support + flagged))
    out["macro_f1"] = float(np.mean(f1s)) if f1s else math.nan
    return out


def _regression(value: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, float]:
    errors = value - y
    squared, absolute = errors**2, np.abs(errors)
    mse = float(squared.mean())
    variance = float(np.var(y))
    out = {
        "rows": float(len(y)),
        "mean_label": float(y.mean()),
        "mean_value": float(value.mean()),
        "rmse": math.sqrt(mse),
        # delta method: se(sqrt(m)) = se(m) / (2 sqrt(m))
        "rmse_se": _se(squared) / (2 * math.sqrt(mse)) if mse > 0 else 0.0,
        "mae": float(absolute.mean()),
        "mae_se": _se(absolute),
    }
    if variance > 0:
        out["r2"] = 1.0 - mse / variance
    return out


def _se(values: NDArray[Any]) -> float:
    n = len(values)
    return float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
