"""Drift statistics: each a small object computing one statistic for every feature at once.

Every statistic has a documented threshold and says on which side of it drift lies:

==================  ===============  ==========  ==============================================
statistic           applies to       threshold   drift when
==================  ===============  ==========  ==============================================
``psi``             numeric, categ.  0.2         value > 0.2 (< 0.1 stable, 0.1-0.2 moderate)
``ks``              numeric          0.05        p-value < 0.05 (statistic equals scipy's)
``jensen_shannon``  numeric, categ.  0.1         distance (base 2, in [0, 1]) > 0.1
``kl_divergence``   numeric, categ.  0.1         KL(reference || current), nats, > 0.1
``wasserstein``     numeric          0.1         distance / reference std > 0.1
``chi_square``      categorical      0.05        p-value < 0.05 (2 x k homogeneity test)
==================  ===============  ==========  ==============================================

Binned statistics (PSI, JS, KL) use the reference's quantile bins for numbers and the
categories for categoricals; PSI and KL smooth proportions by adding 0.5 to every bin
count, so an empty bin never divides by zero. KS and chi-square p-values say whether
*any* difference exists and become tiny for small shifts at large sizes; PSI measures how
much, which is why the monitor decides by PSI (and JS for categoricals) by default.

>>> import numpy as np
>>> import pandas as pd
>>> from driftloop.stats import NumericPair, PopulationStabilityIndex, Profile
>>> rng = np.random.default_rng(0)
>>> profile = Profile.from_frame(pd.DataFrame({"x": rng.normal(0, 1, 10_000)}), bins=10)
>>> pair = NumericPair.build(list(profile.numeric.values()),
...                          pd.DataFrame({"x": rng.normal(1, 1, 10_000)}))
>>> result = PopulationStabilityIndex().compute(pair)
>>> bool(result.drifted[0]), round(float(result.values[0]), 1)
(True, 0.9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy import special

from driftloop.core.errors import InvalidParameterError
from driftloop.stats._pairs import CategoricalPair, NumericPair

__all__ = [
    "ChiSquare",
    "DriftStatistic",
    "FeatureKind",
    "JensenShannon",
    "KLDivergence",
    "KolmogorovSmirnov",
    "PopulationStabilityIndex",
    "StatisticResult",
    "Wasserstein",
    "default_statistics",
]

FeatureKind = Literal["numeric", "categorical"]
FloatArray = NDArray[np.float64]
Pair = NumericPair | CategoricalPair
SMOOTHING = 0.5  # added to every bin count by PSI and KL


@dataclass(frozen=True, eq=False)
class StatisticResult:
    """One statistic over the features of a pair: arrays aligned with ``pair.names``."""

    name: str
    values: FloatArray
    p_values: FloatArray | None
    drifted: NDArray[np.bool_]


@runtime_checkable
class DriftStatistic(Protocol):
    """A drift statistic over all features of a :class:`NumericPair` or :class:`CategoricalPair`.

    ``kinds`` are the feature kinds it applies to; ``threshold`` with ``drift_above``
    (``True``: values above drift; ``False``: p-values below drift) decides ``drifted``.
    """

    @property
    def name(self) -> str:
        """The statistic's name, a key in reports and stored results."""
        ...

    @property
    def kinds(self) -> tuple[FeatureKind, ...]:
        """The kinds of feature it applies to."""
        ...

    @property
    def threshold(self) -> float:
        """The documented threshold."""
        ...

    @property
    def drift_above(self) -> bool:
        """True: values above the threshold drift; False: p-values below it do."""
        ...

    def compute(self, pair: Pair) -> StatisticResult:
        """The statistic of every feature of ``pair``."""
        ...


def _check_threshold(name: str, threshold: float) -> None:
    if not (threshold > 0 and math.isfinite(threshold)):
        raise InvalidParameterError(
            f"Drift statistic '{name}' threshold must be a positive number; got {threshold!r}."
        )


@dataclass(frozen=True)
class _Statistic:
    threshold: float
    name: ClassVar[str]
    kinds: ClassVar[tuple[FeatureKind, ...]]
    drift_above: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_threshold(self.name, self.threshold)

    def _result(self, values: FloatArray, p_values: FloatArray | None = None) -> StatisticResult:
        decisive = values if p_values is None else p_values
        with np.errstate(invalid="ignore"):
            drifted = decisive > self.threshold if self.drift_above else decisive < self.threshold
        return StatisticResult(self.name, values, p_values, drifted & ~np.isnan(decisive))


def _proportions(counts: FloatArray, mask: NDArray[np.bool_], smoothing: float) -> FloatArray:
    smoothed = np.where(mask, counts + smoothing, 0.0)
    totals = smoothed.sum(axis=1, keepdims=True)
    out: FloatArray = np.divide(smoothed, totals, out=np.zeros_like(smoothed), where=totals > 0)
    return out


def _both_proportions(pair: Pair, smoothing: float) -> tuple[FloatArray, FloatArray]:
    return (
        _proportions(pair.ref_counts, pair.mask, smoothing),
        _proportions(pair.cur_counts, pair.mask, smoothing),
    )


def _empty_to_nan(values: FloatArray, pair: Pair) -> FloatArray:
    empty = (pair.ref_counts.sum(axis=1) == 0) | (pair.cur_counts.sum(axis=1) == 0)
    return np.where(empty, np.nan, values)


@dataclass(frozen=True)
class PopulationStabilityIndex(_Statistic):
    """Population stability index over the reference bins: sum (c - r) ln(c / r)."""

    threshold: float = 0.2
    name: ClassVar[str] = "psi"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("numeric", "categorical")

    def compute(self, pair: Pair) -> StatisticResult:
        r, c = _both_proportions(pair, SMOOTHING)
        ratio = np.divide(c, r, out=np.ones_like(c), where=pair.mask & (r > 0))
        values = np.sum((c - r) * np.log(ratio), axis=1)
        return self._result(_empty_to_nan(values, pair))


@dataclass(frozen=True)
class KLDivergence(_Statistic):
    """Kullback-Leibler divergence KL(reference || current) in nats, over the bins."""

    threshold: float = 0.1
    name: ClassVar[str] = "kl_divergence"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("numeric", "categorical")

    def compute(self, pair: Pair) -> StatisticResult:
        r, c = _both_proportions(pair, SMOOTHING)
        values = np.sum(special.rel_entr(r, np.where(pair.mask, c, 1.0)), axis=1)
        return self._result(_empty_to_nan(values, pair))


@dataclass(frozen=True)
class JensenShannon(_Statistic):
    """Jensen-Shannon distance (square root of the divergence, base 2) over the bins."""

    threshold: float = 0.1
    name: ClassVar[str] = "jensen_shannon"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("numeric", "categorical")

    def compute(self, pair: Pair) -> StatisticResult:
        r, c = _both_proportions(pair, 0.0)
        m = (r + c) / 2
        divergence = (special.rel_entr(r, m).sum(axis=1) + special.rel_entr(c, m).sum(axis=1)) / 2
        values = np.sqrt(np.maximum(divergence / np.log(2), 0.0))
        return self._result(_empty_to_nan(values, pair))


@dataclass(frozen=True)
class KolmogorovSmirnov(_Statistic):
    """Two-sample Kolmogorov-Smirnov test; statistic and p-value as ``scipy.stats.ks_2samp``
    (two-sided). ``method="auto"`` is scipy's default: the exact distribution up to 10,000
    values per side (tens of milliseconds per feature), else asymptotic;
    ``method="asymp"`` always takes the asymptotic one, vectorised over features (what a
    monitor of hundreds of features wants)."""

    threshold: float = 0.05
    method: Literal["auto", "asymp"] = "auto"
    name: ClassVar[str] = "ks"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("numeric",)
    drift_above: ClassVar[bool] = False
    exact_up_to: ClassVar[int] = 10_000

    def compute(self, pair: Pair) -> StatisticResult:
        if not isinstance(pair, NumericPair):
            raise InvalidParameterError("Drift statistic 'ks' applies to numeric features only.")
        e = pair.ecdf()
        d = np.maximum(e.max_diff, np.clip(-e.min_diff, 0, 1))
        n1, n2 = pair.ref_n, pair.cur_n
        p = np.full(len(d), np.nan)
        if self.method not in ("auto", "asymp"):
            raise InvalidParameterError(
                f"KS 'method' must be 'auto' or 'asymp'; got {self.method!r}."
            )
        big = np.maximum(n1, n2) > self.exact_up_to
        if self.method == "asymp":
            big[:] = True
        usable = ~np.isnan(d)
        asymp = usable & big
        if asymp.any():
            from scipy import stats  # here: scipy.stats costs seconds to import

            m, n = np.maximum(n1, n2)[asymp].astype(float), np.minimum(n1, n2)[asymp].astype(float)
            p[asymp] = stats.kstwo.sf(d[asymp], np.round(m * n / (m + n)))
        for i in np.flatnonzero(usable & ~big):
            d[i], p[i] = _exact_ks(int(n1[i]), int(n2[i]), float(d[i]))
        return self._result(d, np.clip(p, 0, 1))


def _exact_ks(n1: int, n2: int, d: float) -> tuple[float, float]:
    """scipy's exact two-sided distribution (a private function of scipy.stats, the one
    ``ks_2samp`` calls); its asymptotic formula where that fails or is gone."""
    from scipy import stats

    en = max(n1, n2) * min(n1, n2) / (n1 + n2)
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - a scipy that moved it
        return d, float(stats.kstwo.sf(d, np.round(en)))
    success, d_exact, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    if success:
        return float(d_exact), float(prob)
    return float(d_exact), float(stats.kstwo.sf(d_exact, np.round(en)))


@dataclass(frozen=True)
class Wasserstein(_Statistic):
    """1-Wasserstein (earth mover's) distance, divided by the reference standard deviation
    (0.001 when the reference is constant) so one threshold fits every feature's scale."""

    threshold: float = 0.1
    name: ClassVar[str] = "wasserstein"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("numeric",)

    def compute(self, pair: Pair) -> StatisticResult:
        if not isinstance(pair, NumericPair):
            raise InvalidParameterError(
                "Drift statistic 'wasserstein' applies to numeric features only."
            )
        scale = np.where(np.isfinite(pair.ref_std), np.maximum(pair.ref_std, 1e-3), 1.0)
        return self._result(pair.ecdf().wasserstein / scale)


@dataclass(frozen=True)
class ChiSquare(_Statistic):
    """Chi-square test of homogeneity of the 2 x k table (reference, current) x category,
    as ``scipy.stats.chi2_contingency(..., correction=False)``; categories seen in neither
    side are left out."""

    threshold: float = 0.05
    name: ClassVar[str] = "chi_square"
    kinds: ClassVar[tuple[FeatureKind, ...]] = ("categorical",)
    drift_above: ClassVar[bool] = False

    def compute(self, pair: Pair) -> StatisticResult:
        observed = np.stack([pair.ref_counts, pair.cur_counts], axis=1)  # (f, 2, k)
        used = pair.mask & (observed.sum(axis=1) > 0)
        rows = observed.sum(axis=2, keepdims=True)
        cols = observed.sum(axis=1, keepdims=True)
        total = rows.sum(axis=1, keepdims=True)
        expected = np.divide(rows * cols, total, out=np.zeros_like(observed), where=total > 0)
        terms = np.divide(
            (observed - expected) ** 2, expected, out=np.zeros_like(observed), where=expected > 0
        )
        chi2 = terms.sum(axis=(1, 2))
        dof = used.sum(axis=1) - 1
        from scipy import stats

        p = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)
        values = _empty_to_nan(chi2, pair)
        return self._result(values, np.where(np.isnan(values), np.nan, p))


def default_statistics() -> tuple[DriftStatistic, ...]:
    """Every statistic with its documented default threshold."""
    return (
        PopulationStabilityIndex(),
        KolmogorovSmirnov(),
        JensenShannon(),
        KLDivergence(),
        Wasserstein(),
        ChiSquare(),
    )
