"""How much each feature alone predicts the label: a leak is a feature that alone is
(nearly) perfect.

Each feature is cut into bins on the training split (quantiles for numbers, one bin per
category or boolean value, one for nulls); the label's mean (binary, regression) or class
shares (multiclass) per bin, learnt on the training split with a little smoothing toward
the prior, predict the test split; the result is the model metric's skill over the prior
(0: no better than guessing, 1: perfect). A copy of the label, or an outcome recorded
after the fact, scores about 1.

>>> import numpy as np, pandas as pd
>>> from driftloop.registry import Signature
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> frame = pd.DataFrame({"noise": rng.normal(size=2000), "leak": y * 3.0, "y": y})
>>> sig = Signature.infer(frame[["noise", "leak"]], task="binary", classes=("0", "1"))
>>> skill = single_feature_skill(sig, frame[:1000], frame[1000:], label="y", metric="roc_auc")
>>> round(skill["noise"], 1), round(skill["leak"], 3)
(0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.registry import Signature, encode_frame
from driftloop.stats import TASKS, Outputs, baseline, evaluate, roc_auc, skill

__all__ = ["single_feature_skill"]

_BINS = 50
_SMOOTHING = 2.0  # prior pseudo-rows per bin


def _bins(train: NDArray[np.float64], test: NDArray[np.float64], kind: str) -> tuple[Any, Any]:
    """Bin indexes of train and test values (nulls in their own bin): quantile bins of
    numbers with many values, else one bin per value."""
    present = train[~np.isnan(train)]
    values = np.unique(present)
    if kind == "number" and len(values) > _BINS:
        values = np.unique(np.quantile(present, np.linspace(0, 1, _BINS + 1)[1:-1]))

    def index(v: NDArray[np.float64]) -> NDArray[np.intp]:
        found = np.searchsorted(values, np.nan_to_num(v))
        return np.where(np.isnan(v), len(values) + 1, found)

    return index(train), index(test)


def _metric(outputs: Outputs, y: NDArray[Any], metric: str) -> float:
    """The one metric the check judges: ROC AUC and RMSE directly (a 1M-row training set
    has one such check per feature), any other through :func:`evaluate`."""
    if metric == "roc_auc" and outputs.task == "binary":
        positives = int(np.sum(y == 1))
        return roc_auc(y, outputs.raw) if 0 < positives < len(y) else math.nan
    if metric == "rmse" and outputs.task == "regression":
        return math.sqrt(float(np.mean((outputs.raw - y.astype(np.float64)) ** 2)))
    return evaluate(outputs, y).get(metric, math.nan)


def single_feature_skill(
    signature: Signature,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    label: str,
    metric: str,
    baseline_value: float | None = None,
) -> dict[str, float]:
    """Each feature's skill at predicting ``label`` alone (see the module docs)."""
    task = TASKS[signature.task]
    y_train, y_test = train[label].to_numpy(), test[label].to_numpy()
    prior = baseline(task, y_train, classes=signature.classes)
    if baseline_value is None:
        baseline_value = evaluate(prior.outputs(len(y_test)), y_test).get(metric, math.nan)
    x_train = encode_frame(signature, train).matrix
    x_test = encode_frame(signature, test).matrix
    out: dict[str, float] = {}
    for j, spec in enumerate(signature.features):
        b_train, b_test = _bins(x_train[:, j], x_test[:, j], spec.kind)
        size = int(max(b_train.max(initial=0), b_test.max(initial=0))) + 1
        counts = np.bincount(b_train, minlength=size).astype(np.float64)[:, None]
        if task.name == "multiclass":
            k = len(signature.classes)
            onehot = np.eye(k)[y_train.astype(np.intp)]
            sums = np.stack([np.bincount(b_train, onehot[:, c], size) for c in range(k)], 1)
            raw = (sums + _SMOOTHING * prior.value) / (counts + _SMOOTHING)
            predicted = raw[b_test]
        else:
            sums = np.bincount(b_train, y_train.astype(np.float64), size)[:, None]
            raw = (sums + _SMOOTHING * prior.value) / (counts + _SMOOTHING)
            predicted = raw[b_test, 0]
        scored = _metric(Outputs(task.name, predicted, signature.classes), y_test, metric)
        value = skill(metric, scored, baseline_value or math.nan)
        out[spec.name] = round(float(value), 6) if math.isfinite(value) else math.nan
    return out
