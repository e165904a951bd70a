"""Task metrics agree with scikit-learn; tasks are inferred with a reason; labels encode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from driftloop.core.errors import InsufficientDataError, SchemaMismatchError
from driftloop.stats import TASKS, Outputs, baseline, encode_labels, evaluate, infer_task, skill


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([True, False, True], "binary"),
        (["yes", "no", "no"], "binary"),
        ([0.0, 1.0, 1.0, 0.0], "binary"),
        (["a", "b", "c", "a"], "multiclass"),
        ([1, 2, 3] * 40, "multiclass"),
        (np.linspace(0, 1, 50).tolist(), "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_task_is_inferred_from_the_label(values: list[object], task: str) -> None:
    got, reason = infer_task(pd.Series(values), name="y")
    assert got == task
    assert "'y'" in reason


def test_a_label_with_one_value_is_refused_by_name() -> None:
    with pytest.raises(InsufficientDataError, match="'repaid' has one value only"):
        infer_task(pd.Series([1, 1, 1]), name="repaid")


def test_binary_labels_keep_their_names_and_order() -> None:
    y, classes = encode_labels(pd.Series([True, False, True]), "binary")
    assert classes == ("false", "true")
    assert y.tolist() == [1, 0, 1]
    y, classes = encode_labels(pd.Series([1.0, 0.0]), "binary")
    assert classes == ("0", "1")
    with pytest.raises(SchemaMismatchError, match="outside the classes"):
        encode_labels(pd.Series(["a", "z"]), "multiclass", classes=("a", "b"))
    with pytest.raises(SchemaMismatchError, match="null"):
        encode_labels(pd.Series([1.0, None]), "regression", name="price")


def test_binary_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = evaluate(Outputs("binary", p, ("0", "1")), y)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert m["roc_auc_se"] > 0


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    raw = rng.random((400, 3)) + np.eye(3)[y]
    p = raw / raw.sum(axis=1, keepdims=True)
    m = evaluate(Outputs("multiclass", p, ("a", "b", "c")), y)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"))
    assert m["recall:b"] == pytest.approx(skm.recall_score(y, p.argmax(1), average=None)[1])


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    v = y + rng.normal(scale=0.5, size=300)
    m = evaluate(Outputs("regression", v), y)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, v)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, v))
    assert m["r2"] == pytest.approx(skm.r2_score(y, v))


def test_a_model_no_better_than_the_prior_has_no_skill() -> None:
    y = np.array([0, 1] * 50)
    prior = baseline(TASKS["binary"], y, classes=("0", "1")).outputs(len(y))
    base = evaluate(prior, y)
    assert skill("log_loss", base["log_loss"], base["log_loss"]) == 0.0
    values = np.arange(10.0)
    mean = baseline(TASKS["regression"], values).outputs(10)
    assert evaluate(mean, values)["r2"] == pytest.approx(0.0)
