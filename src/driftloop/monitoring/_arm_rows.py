"""What the records of two arms say row by row: the per-row label metrics the sequential
tests compare (right or wrong, log loss, absolute and squared error, a recommended list hit
or not; pair by pair for a shadow and its primary) and how often a shadow's answers differ
from its primary's.

A recommended list (task ``recommendation``) is labelled as a whole: ``/v1/feedback``
gives its prediction id one number, a click (1, or 0 for a list shown and not clicked) or a
rating. The list is a **hit** (1) when that label is at least ``hit_label`` (1 for clicks,
say 4 for one-to-five star ratings), a miss (0) when it is labelled below. A list with no
label is left out, as an unlabelled row of any task is: feedback arrives late, so an
unlabelled list is not yet known to be a miss, and counting it as one would make the arm
whose lists are the most recent look worse. A client that reports only clicks must
therefore also label the lists it showed and saw no click on (0), for instance when the
session ends. A shadow's list gets no hit test: the label belongs to the primary's list,
which the user saw, and says nothing of a list no one was shown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.monitoring._arm_limits import ArmLimits
from driftloop.monitoring._outputs import predicted_classes
from driftloop.stats import (
    SequentialTest,
    sequential_means,
    sequential_paired,
    sequential_proportions,
)

__all__ = ["hits", "label_tests", "pair_disagreement", "served_order"]

_EPS = 1e-15


def served_order(rows: pd.DataFrame) -> NDArray[np.int64]:
    """When each row was served (its event time for rows from before that was kept)."""
    served = rows["served_at"].where(rows["served_at"].notna(), rows["ts"])
    order: NDArray[np.int64] = pd.to_datetime(served, utc=True).to_numpy(np.int64)
    return order


def pair_disagreement(
    champ: pd.DataFrame,
    chall: pd.DataFrame,
    task: str,
    classes: Sequence[str],
    threshold: float,
    tolerance: float,
) -> float:
    """The share of shadow pairs (rows aligned) whose answers differ: the decision when
    both carry one, else the side of ``threshold`` (binary); the class (multiclass); more
    than ``tolerance`` standard deviations of the champion's values apart (regression);
    the items or their order (recommendation)."""
    if not len(champ):
        return math.nan
    if task == "recommendation":
        left_lists = [_items(o) for o in champ["outputs"]]
        right_lists = [_items(o) for o in chall["outputs"]]
        return float(np.mean([a != b for a, b in zip(left_lists, right_lists, strict=True)]))
    if task == "regression":
        a, b = champ["score"].to_numpy(np.float64), chall["score"].to_numpy(np.float64)
        spread = float(np.std(a)) if len(a) > 1 else 0.0
        return float(np.mean(np.abs(a - b) > tolerance * max(spread, _EPS)))
    if task == "multiclass":
        left, right = predicted_classes(champ, classes), predicted_classes(chall, classes)
        if left is None or right is None:
            return math.nan
        return float(np.mean(left.to_numpy(dtype=object) != right.to_numpy(dtype=object)))
    decided = (champ["decision"].astype(str) != "").all() and (
        chall["decision"].astype(str) != ""
    ).all()
    if decided:  # the decision policy's answers
        return float(np.mean(champ["decision"].to_numpy() != chall["decision"].to_numpy()))
    return float(
        np.mean(
            (champ["score"].to_numpy() >= threshold) != (chall["score"].to_numpy() >= threshold)
        )
    )


def _items(outputs: object) -> tuple[str, ...]:
    items = outputs.get("items") if isinstance(outputs, Mapping) else None
    return tuple(str(i) for i in items) if isinstance(items, Sequence) else ()


# the per-row label metrics tested, by task (accuracy and hit_rate: proportions, higher is
# better; the others: means, lower is better)
_PER_ROW = {
    "binary": ("accuracy", "log_loss"),
    "multiclass": ("accuracy",),
    "regression": ("absolute_error", "squared_error"),
    "recommendation": ("hit_rate",),
}
_PROPORTIONS = ("accuracy", "hit_rate")


def label_tests(
    champ: pd.DataFrame,
    chall: pd.DataFrame,
    task: str,
    classes: Sequence[str],
    threshold: float,
    limits: ArmLimits,
    *,
    paired: bool = False,
    hit_label: float = 1.0,
) -> dict[str, SequentialTest]:
    """The sequential tests of the task's per-row label metrics on the labelled rows;
    ``paired``: the two frames are the same rows, aligned (a shadow and its primary),
    tested pair by pair (none for lists: see the module docs). ``hit_label``: the label
    from which a recommended list counts as hit."""
    tests: dict[str, SequentialTest] = {}
    if paired and task == "recommendation":
        return tests
    left, right = champ[champ["label"].notna()], chall[chall["label"].notna()]
    for name in _PER_ROW[task]:
        a = _per_row(name, left, task, classes, threshold, hit_label)
        b = _per_row(name, right, task, classes, threshold, hit_label)
        if a is None or b is None:
            continue
        higher = name in _PROPORTIONS
        margin = limits.margin(name, float(a.mean()) if len(a) else 0.0)
        if paired:
            tests[name] = sequential_paired(
                a, b, higher_is_better=higher, margin=margin, alpha=limits.alpha,
                order=served_order(left),
            )  # fmt: skip
            continue
        run = sequential_proportions if name in _PROPORTIONS else sequential_means
        tests[name] = run(
            a,
            b,
            higher_is_better=higher,
            margin=margin,
            alpha=limits.alpha,
            champion_order=served_order(left),
            challenger_order=served_order(right),
        )
    return tests


def hits(rows: pd.DataFrame, hit_label: float) -> NDArray[np.float64]:
    """1 per labelled list whose label is at least ``hit_label``, 0 per other labelled
    list (unlabelled lists are left out: see the module docs)."""
    y: NDArray[np.float64] = rows["label"].to_numpy(np.float64, na_value=np.nan)
    hit: NDArray[np.float64] = (y[~np.isnan(y)] >= hit_label).astype(np.float64)
    return hit


def _per_row(
    name: str,
    rows: pd.DataFrame,
    task: str,
    classes: Sequence[str],
    threshold: float,
    hit_label: float,
) -> NDArray[np.float64] | None:
    """One value per labelled record: right or wrong, its log loss, its error, hit or
    not; None when the records cannot say (a multiclass model's records without its
    classes)."""
    y: NDArray[np.float64] = rows["label"].to_numpy(np.float64)
    score: NDArray[np.float64] = rows["score"].to_numpy(np.float64)
    values: NDArray[np.float64]
    if task == "recommendation":
        values = hits(rows, hit_label)
    elif task == "regression":
        values = np.abs(score - y) if name == "absolute_error" else (score - y) ** 2
    elif task == "binary":
        positive = y > 0.5
        if name == "accuracy":
            values = ((score >= threshold) == positive).astype(np.float64)
        else:
            p = np.clip(score, _EPS, 1 - _EPS)
            values = -np.where(positive, np.log(p), np.log(1 - p))
    elif not len(rows):
        values = np.zeros(0)
    else:
        names = predicted_classes(rows, classes)
        if names is None:
            return None
        index = pd.Index(list(classes), dtype=object).get_indexer(pd.Index(names.to_numpy(object)))
        values = (index == y).astype(np.float64)
    return values
