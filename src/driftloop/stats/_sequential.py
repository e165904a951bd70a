"""Always-valid sequential comparison of a challenger with a champion: the mixture
sequential probability ratio test (mSPRT) with a normal mixture, as in Johari, Pekelis and
Walsh, "Always valid inference: continuous monitoring of A/B tests" (2017), the test
behind Optimizely's stats engine.

The quantity compared is the difference ``d = challenger - champion`` of a per-row mean:
a proportion (an error rate, a disagreement rate, accuracy as the rate of right answers)
or a mean (absolute error, squared error, log loss, a score). After ``k`` rows of the two
arms, merged in arrival order, with difference estimate ``d_k`` and its variance
``V_k = s_champion^2 / n_champion + s_challenger^2 / n_challenger``, the mixture
likelihood ratio against ``d = d0`` with a ``N(d0, tau^2)`` mixture is::

    L_k(d0) = sqrt(V_k / (V_k + tau^2)) * exp(tau^2 (d_k - d0)^2 / (2 V_k (V_k + tau^2)))

Under ``d = d0`` it is a (asymptotically) nonnegative martingale of mean 1, so by Ville's
inequality it ever exceeds ``1 / alpha`` with probability at most ``alpha``, however
often one looks. Hence the **always-valid p-value** ``p_k = min(1, min_{j<=k} 1 / L_j(0))``
and the **confidence sequence** ``d_k +/- sqrt(V_k (V_k + tau^2) / tau^2 *
(2 ln(1 / alpha) + ln((V_k + tau^2) / V_k)))``, intersected over ``k``: it covers the true
difference at every ``k`` at once with probability at least ``1 - alpha``. Here every
prefix is evaluated, so a decision taken at any peek is covered.

``tau`` is the mixture's spread, in standard deviations of one row (``tau = effect *
s``, ``s`` the pooled row standard deviation): differences near ``effect`` standard
deviations are found fastest. Variances are plug-in estimates (a proportion's smoothed
by one success and one failure, so an arm without errors yet has a positive variance;
``V_k`` the larger of the unpooled and the pooled estimate, which keeps a small arm of
skewed values honest), and no prefix with fewer than ``min_rows`` rows per arm is
evaluated: the guarantee is the normal approximation's, checked by simulation in the
tests.

Decisions, with ``gain`` the difference oriented so that positive is better for the
challenger (``d`` when higher is better, ``-d`` otherwise) and ``[lo, hi]`` its
confidence sequence: ``challenger_worse`` when ``hi < 0`` (significantly worse),
``challenger_not_worse`` when ``lo > -margin`` (worse by less than ``margin`` at most, a
non-inferiority test), else ``undecided``.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> champion = rng.random(3_000) < 0.80  # right 80% of the time
>>> challenger = rng.random(3_000) < 0.70
>>> test = sequential_proportions(champion, challenger, margin=0.02)
>>> test.decision, round(test.difference, 2), test.p_value < 0.05
('challenger_worse', -0.08, True)
>>> same = sequential_proportions(champion, rng.random(3_000) < 0.80, margin=0.05)
>>> same.decision
'challenger_not_worse'
>>> errors = sequential_means(rng.exponential(1.0, 500), rng.exponential(1.0, 500),
...                           higher_is_better=False, margin=0.5)
>>> errors.decision, errors.lower < 0 < errors.upper
('challenger_not_worse', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftloop.core.errors import InvalidParameterError

__all__ = [
    "Decision",
    "SequentialTest",
    "check_parameters",
    "mixture",
    "sequential_means",
    "sequential_proportions",
]

Decision = Literal["challenger_worse", "challenger_not_worse", "undecided"]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SequentialTest:
    """The state of one always-valid comparison after every row seen so far.

    ``champion`` and ``challenger`` are the arms' means (rates for proportions),
    ``difference`` is ``challenger - champion``, ``[lower, upper]`` its confidence
    sequence at level ``1 - alpha`` (NaN before ``min_rows`` rows per arm), ``p_value``
    the always-valid p-value of "no difference".
    """

    kind: Literal["proportion", "mean", "paired"]
    n_champion: int
    n_challenger: int
    champion: float
    challenger: float
    difference: float
    lower: float
    upper: float
    p_value: float
    alpha: float
    margin: float
    higher_is_better: bool
    decision: Decision

    def decide(self, margin: float) -> Decision:
        """The decision with another non-inferiority ``margin`` (the same sequence)."""
        gain_lo, gain_hi = (
            (self.lower, self.upper) if self.higher_is_better else (-self.upper, -self.lower)
        )
        if gain_hi < 0:
            return "challenger_worse"
        if gain_lo > -margin:
            return "challenger_not_worse"
        return "undecided"

    @property
    def significant(self) -> bool:
        """Does the always-valid p-value reject "no difference" at ``alpha``?"""
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number a float or int, NaN and infinities as None."""
        return {
            "kind": self.kind,
            "n_champion": self.n_champion,
            "n_challenger": self.n_challenger,
            "champion": _finite(self.champion),
            "challenger": _finite(self.challenger),
            "difference": _finite(self.difference),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "p_value": _finite(self.p_value),
            "alpha": self.alpha,
            "margin": self.margin,
            "higher_is_better": self.higher_is_better,
            "decision": self.decision,
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def sequential_proportions(
    champion: ArrayLike,
    challenger: ArrayLike,
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
    alpha: float = 0.05,
    effect: float = 0.2,
    min_rows: int = 20,
    champion_order: ArrayLike | None = None,
    challenger_order: ArrayLike | None = None,
) -> SequentialTest:
    """Always-valid test of the difference of two proportions, from each arm's 0/1 (or
    boolean) outcomes in arrival order; ``*_order`` (times or sequence numbers) merge the
    two arms' streams, by default spread evenly over the same span. NaN outcomes (not
    known yet) are left out. See the module docstring for the rest."""
    return _test(
        "proportion",
        champion,
        challenger,
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        effect=effect,
        min_rows=min_rows,
        orders=(champion_order, challenger_order),
    )


def sequential_means(
    champion: ArrayLike,
    challenger: ArrayLike,
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
    alpha: float = 0.05,
    effect: float = 0.2,
    min_rows: int = 20,
    champion_order: ArrayLike | None = None,
    challenger_order: ArrayLike | None = None,
) -> SequentialTest:
    """Always-valid test of the difference of two means (per-row errors, losses or
    scores), in the same units as the values; as :func:`sequential_proportions`."""
    return _test(
        "mean",
        champion,
        challenger,
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        effect=effect,
        min_rows=min_rows,
        orders=(champion_order, challenger_order),
    )


def _test(
    kind: Literal["proportion", "mean"],
    champion: ArrayLike,
    challenger: ArrayLike,
    *,
    higher_is_better: bool,
    margin: float,
    alpha: float,
    effect: float,
    min_rows: int,
    orders: tuple[ArrayLike | None, ArrayLike | None],
) -> SequentialTest:
    check_parameters(alpha=alpha, effect=effect, margin=margin, min_rows=min_rows)
    a, order_a = _values(champion, orders[0], "champion")
    b, order_b = _values(challenger, orders[1], "challenger")
    if kind == "proportion" and (np.any((a != 0) & (a != 1)) or np.any((b != 0) & (b != 1))):
        raise InvalidParameterError("Proportion outcomes must be 0 or 1 (or booleans).")
    mean_a = float(a.mean()) if len(a) else math.nan
    mean_b = float(b.mean()) if len(b) else math.nan
    lower, upper, p_value = _sequence(kind, a, b, order_a, order_b, alpha, effect, min_rows)
    test = SequentialTest(
        kind=kind,
        n_champion=len(a),
        n_challenger=len(b),
        champion=mean_a,
        challenger=mean_b,
        difference=mean_b - mean_a,
        lower=lower,
        upper=upper,
        p_value=p_value,
        alpha=alpha,
        margin=margin,
        higher_is_better=higher_is_better,
        decision="undecided",
    )
    return replace(test, decision=test.decide(margin))


def check_parameters(*, alpha: float, effect: float, margin: float, min_rows: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise InvalidParameterError(f"'alpha' must be in (0, 1); got {alpha}.")
    if not effect > 0.0:
        raise InvalidParameterError(f"'effect' must be > 0; got {effect}.")
    if not margin >= 0.0:
        raise InvalidParameterError(f"'margin' must be >= 0; got {margin}.")
    if min_rows < 2:
        raise InvalidParameterError(f"'min_rows' must be >= 2; got {min_rows}.")


def _values(values: ArrayLike, order: ArrayLike | None, arm: str) -> tuple[FloatArray, FloatArray]:
    """The arm's known values and their positions in the merged stream, in that order."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if order is None:
        at = (np.arange(len(x), dtype=np.float64) + 1.0) / max(len(x), 1)
    else:
        at = np.asarray(order).ravel()
        if at.dtype.kind == "M":
            at = at.astype("datetime64[ns]").astype(np.int64)
        at = at.astype(np.float64)
        if len(at) != len(x):
            raise InvalidParameterError(
                f"The {arm}'s order must have one entry per value; "
                f"got {len(at)} for {len(x)} values."
            )
    known = ~np.isnan(x)
    if np.isinf(x[known]).any():
        raise InvalidParameterError(f"The {arm}'s values must be finite (NaN: unknown).")
    x, at = x[known], at[known]
    index = np.argsort(at, kind="stable")
    return x[index], at[index]


def _sequence(
    kind: str,
    a: FloatArray,
    b: FloatArray,
    order_a: FloatArray,
    order_b: FloatArray,
    alpha: float,
    effect: float,
    min_rows: int,
) -> tuple[float, float, float]:
    """The confidence sequence's bounds and the always-valid p-value over every prefix of
    the merged stream (vectorised: cumulative sums, one array per quantity)."""
    if len(a) < min_rows or len(b) < min_rows:
        return math.nan, math.nan, 1.0
    # champion rows first on ties: a stable sort of the concatenation
    merged = np.argsort(np.concatenate([order_a, order_b]), kind="stable")
    is_b = merged >= len(a)
    x = np.concatenate([a, b])[merged]
    counts_b = np.cumsum(is_b).astype(np.float64)
    counts_a = np.arange(1.0, len(x) + 1.0) - counts_b
    ready = (counts_a >= min_rows) & (counts_b >= min_rows)

    def running(values: FloatArray) -> FloatArray:
        total: FloatArray = np.cumsum(values)[ready]
        return total

    n_a, n_b = counts_a[ready], counts_b[ready]
    s_a, s_b = running(np.where(is_b, 0.0, x)), running(np.where(is_b, x, 0.0))
    q_a, q_b = running(np.where(is_b, 0.0, x * x)), running(np.where(is_b, x * x, 0.0))
    mean_a, mean_b = s_a / n_a, s_b / n_b
    if kind == "proportion":  # smoothed: one success and one failure per arm
        p_a, p_b = (s_a + 1.0) / (n_a + 2.0), (s_b + 1.0) / (n_b + 2.0)
        var_a, var_b = p_a * (1.0 - p_a), p_b * (1.0 - p_b)
    else:
        var_a = np.maximum(q_a - n_a * mean_a**2, 0.0) / (n_a - 1)
        var_b = np.maximum(q_b - n_b * mean_b**2, 0.0) / (n_b - 1)
    pooled = (var_a * (n_a - 1) + var_b * (n_b - 1)) / (n_a + n_b - 2)
    floor = 1e-12 * np.maximum(1.0, (mean_a**2 + mean_b**2))  # constant arms: no 0/0
    tau2 = effect**2 * np.maximum(pooled, floor)
    # the larger of the unpooled and the pooled variance of the difference: with a small
    # arm of skewed values (a 5% canary's squared errors), its own variance is mostly
    # underestimated and the pooled one ignores its rare large values; either alone
    # raised false alarms several-fold in simulation, the larger of the two does not
    v = np.maximum(
        np.maximum(var_a / n_a + var_b / n_b, pooled * (1.0 / n_a + 1.0 / n_b)),
        floor / np.minimum(n_a, n_b),
    )
    return mixture(mean_b - mean_a, v, tau2, alpha)


def mixture(
    d: FloatArray, v: FloatArray, tau2: FloatArray, alpha: float
) -> tuple[float, float, float]:
    """The normal-mixture SPRT over a sequence of estimates ``d`` with variances ``v``
    and mixture variances ``tau2``: the intersected confidence sequence's bounds and the
    always-valid p-value of ``d = 0``."""
    log_ratio = 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2.0 * v * (v + tau2))
    p_value = float(min(1.0, math.exp(-float(log_ratio.max()))))
    radius = np.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + np.log((v + tau2) / v)))
    return float((d - radius).max()), float((d + radius).min()), p_value
