"""Always-valid sequential comparison of two models on the *same* rows (a shadow and its
primary): the normal-mixture SPRT of :mod:`driftloop.stats._sequential` on the per-row
differences ``x_i = challenger_i - champion_i`` of a metric (right or wrong, a loss, an
error).

Scoring the same rows removes the rows' own variation from the comparison: two models
that answer alike differ on few rows, and the difference's variance is that of the few,
not of the rows. After ``k`` pairs, with ``d_k`` the mean difference, the variance of
``d_k`` is ``V_k = s_k^2 / k`` where ``s_k^2 = (sum (x_i - d_k)^2 + s0^2) / k`` counts
one pseudo-pair of variance ``s0^2 = s_champion^2 + s_challenger^2`` (the difference's
variance were the arms independent): a start where the two agree on every row does not
claim a certainty it has not earned, and the pseudo-pair's weight fades as pairs come.
The mixture's spread is ``tau = effect * s``, ``s`` the rows' pooled standard deviation.
Everything else (always-valid p-value, confidence sequence intersected over every
prefix, decisions with a non-inferiority margin) is as in the two-sample tests.

>>> import numpy as np
>>> rng = np.random.default_rng(5)
>>> champion = (rng.random(400) < 0.8).astype(float)
>>> same = sequential_paired(champion, champion, margin=0.02)
>>> same.decision, same.difference
('challenger_not_worse', 0.0)
>>> flipped = np.where(rng.random(400) < 0.2, 1 - champion, champion)  # wrong more often
>>> sequential_paired(champion, flipped, margin=0.02).decision
'challenger_worse'
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftloop.core.errors import InvalidParameterError
from driftloop.stats._sequential import SequentialTest, check_parameters, mixture

__all__ = ["sequential_paired"]

FloatArray = NDArray[np.float64]


def sequential_paired(
    champion: ArrayLike,
    challenger: ArrayLike,
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
    alpha: float = 0.05,
    effect: float = 0.2,
    min_rows: int = 20,
    order: ArrayLike | None = None,
) -> SequentialTest:
    """Always-valid test of the mean difference of a per-row metric between two models
    on the same rows: ``champion[i]`` and ``challenger[i]`` are the metric of row ``i``
    (0/1 outcomes or numbers), ``order`` when each row was served (default: as given).
    Pairs with a NaN on either side (not known yet) are left out. See the module docs."""
    check_parameters(alpha=alpha, effect=effect, margin=margin, min_rows=min_rows)
    a = np.asarray(champion, dtype=np.float64).ravel()
    b = np.asarray(challenger, dtype=np.float64).ravel()
    at = np.arange(len(a), dtype=np.float64) if order is None else np.asarray(order).ravel()
    if not len(a) == len(b) == len(at):
        raise InvalidParameterError(
            "A paired test needs one champion and one challenger value (and one order) per "
            f"row; got {len(a)}, {len(b)} and {len(at)}."
        )
    if at.dtype.kind == "M":
        at = at.astype("datetime64[ns]").astype(np.int64)
    known = ~np.isnan(a) & ~np.isnan(b)
    if np.isinf(a[known]).any() or np.isinf(b[known]).any():
        raise InvalidParameterError("Paired values must be finite (NaN: unknown).")
    index = np.argsort(at[known].astype(np.float64), kind="stable")
    a, b = a[known][index], b[known][index]
    lower, upper, p_value = _sequence(a, b, alpha, effect, min_rows)
    test = SequentialTest(
        kind="paired",
        n_champion=len(a),
        n_challenger=len(b),
        champion=float(a.mean()) if len(a) else math.nan,
        challenger=float(b.mean()) if len(b) else math.nan,
        difference=float((b - a).mean()) if len(a) else math.nan,
        lower=lower,
        upper=upper,
        p_value=p_value,
        alpha=alpha,
        margin=margin,
        higher_is_better=higher_is_better,
        decision="undecided",
    )
    return replace(test, decision=test.decide(margin))


def _sequence(
    a: FloatArray, b: FloatArray, alpha: float, effect: float, min_rows: int
) -> tuple[float, float, float]:
    if len(a) < min_rows:
        return math.nan, math.nan, 1.0
    k = np.arange(1.0, len(a) + 1.0)
    x = b - a
    mean = np.cumsum(x) / k
    spread = np.maximum(np.cumsum(x * x) - k * mean**2, 0.0)
    var_a, var_b = _row_variance(a, k), _row_variance(b, k)
    prior = var_a + var_b
    floor = 1e-12 * np.maximum(1.0, np.cumsum(a) ** 2 / k**2 + np.cumsum(b) ** 2 / k**2)
    v = np.maximum((spread + prior) / k / k, floor / k)
    tau2 = effect**2 * np.maximum(prior / 2.0, floor)
    ready = k >= min_rows
    return mixture(mean[ready], v[ready], tau2[ready], alpha)


def _row_variance(values: FloatArray, k: FloatArray) -> FloatArray:
    """Each prefix's variance of the rows: a proportion's smoothed by one success and one
    failure when the values are 0/1, else the sample variance (0 for one row)."""
    total = np.cumsum(values)
    if np.isin(values, (0.0, 1.0)).all():
        p = (total + 1.0) / (k + 2.0)
        smoothed: FloatArray = p * (1.0 - p)
        return smoothed
    mean = total / k
    spread = np.maximum(np.cumsum(values * values) - k * mean**2, 0.0)
    variance: FloatArray = spread / np.maximum(k - 1.0, 1.0)
    return variance
