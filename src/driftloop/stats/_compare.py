"""Compare a window against a reference profile (or a reference frame), every statistic at once.

>>> import numpy as np
>>> import pandas as pd
>>> rng = np.random.default_rng(1)
>>> ref = pd.DataFrame({"amount": rng.lognormal(3, 1, 5_000), "channel": ["web"] * 5_000})
>>> cur = pd.DataFrame({"amount": 1.5 * rng.lognormal(3, 1, 5_000)})
>>> table = compare_frames(ref, cur)
>>> table.status
{'amount': 'ok', 'channel': 'missing'}
>>> bool(table.results["ks"].drifted[0])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from driftloop.core.errors import InvalidParameterError
from driftloop.stats._drift import DriftStatistic, FeatureKind, StatisticResult, default_statistics
from driftloop.stats._pairs import CategoricalPair, NumericPair
from driftloop.stats._profile import Profile

__all__ = ["DriftTable", "FeatureStatus", "compare_frames", "compare_to_profile"]

FeatureStatus = Literal["ok", "missing", "insufficient-data"]


@dataclass(frozen=True, eq=False)
class DriftTable:
    """Statistics of every feature of a window against its reference.

    ``status[f]`` says whether feature ``f`` could be compared: ``"missing"`` (not in the
    window), ``"insufficient-data"`` (fewer than ``min_rows`` non-null values) or ``"ok"``.
    ``results[stat]`` is aligned with ``names[kind]``; statistics of features that are not
    ``"ok"`` are NaN and never flagged as drifted.
    """

    rows: int
    min_rows: int
    status: dict[str, FeatureStatus]
    kinds: dict[str, FeatureKind]
    numeric: NumericPair | None = None
    categorical: CategoricalPair | None = None
    results: dict[str, StatisticResult] = field(default_factory=dict)
    categorical_results: dict[str, StatisticResult] = field(default_factory=dict)

    def value(self, statistic: str, feature: str) -> float:
        """One statistic's value for one feature (NaN when not computed)."""
        for pair, results in self._sections():
            if pair is not None and feature in pair.names and statistic in results:
                return float(results[statistic].values[pair.names.index(feature)])
        return float("nan")

    def _sections(
        self,
    ) -> tuple[tuple[NumericPair | CategoricalPair | None, dict[str, StatisticResult]], ...]:
        return ((self.numeric, self.results), (self.categorical, self.categorical_results))

    def to_frame(self) -> pd.DataFrame:
        """One row per feature and statistic: value, p_value, drifted, status."""
        records: list[dict[str, object]] = []
        for pair, results in self._sections():
            if pair is None:
                continue
            for stat in results.values():
                for i, name in enumerate(pair.names):
                    p = stat.p_values[i] if stat.p_values is not None else np.nan
                    records.append(
                        {
                            "feature": name,
                            "kind": self.kinds[name],
                            "statistic": stat.name,
                            "value": float(stat.values[i]),
                            "p_value": float(p),
                            "drifted": bool(stat.drifted[i]),
                            "status": self.status[name],
                        }
                    )
        for name, status in self.status.items():
            if status == "missing":
                records.append(
                    {
                        "feature": name,
                        "kind": self.kinds[name],
                        "statistic": None,
                        "value": np.nan,
                        "p_value": np.nan,
                        "drifted": False,
                        "status": status,
                    }
                )
        return pd.DataFrame.from_records(
            records,
            columns=["feature", "kind", "statistic", "value", "p_value", "drifted", "status"],
        )


def compare_to_profile(
    profile: Profile,
    current: pd.DataFrame,
    *,
    statistics: Sequence[DriftStatistic] | None = None,
    min_rows: int = 100,
) -> DriftTable:
    """Every statistic of every profiled feature of ``current`` against ``profile``.

    Columns of ``current`` that the profile does not know are ignored; profiled features
    absent from ``current`` are reported as ``"missing"``.
    """
    if min_rows < 1:
        raise InvalidParameterError(f"'min_rows' must be >= 1; got {min_rows}.")
    status: dict[str, FeatureStatus] = {}
    kinds: dict[str, FeatureKind] = {}
    for name in profile.numeric:
        kinds[name] = "numeric"
    for name in profile.categorical:
        kinds[name] = "categorical"
    for name in profile.features:
        status[name] = "ok" if name in current.columns else "missing"

    # by the mapping's keys, whatever name each profile carries
    numeric = [replace(p, name=n) for n, p in profile.numeric.items() if status[n] == "ok"]
    categorical = [replace(p, name=n) for n, p in profile.categorical.items() if status[n] == "ok"]
    num_pair = NumericPair.build(numeric, current) if numeric else None
    cat_pair = CategoricalPair.build(categorical, current) if categorical else None
    for pair in (num_pair, cat_pair):
        if pair is not None:
            for name, n in zip(pair.names, pair.cur_n, strict=True):
                if n < min_rows:
                    status[name] = "insufficient-data"

    table = DriftTable(len(current), min_rows, status, kinds, num_pair, cat_pair)
    for stat in statistics if statistics is not None else default_statistics():
        for kind, pair, results in (
            ("numeric", num_pair, table.results),
            ("categorical", cat_pair, table.categorical_results),
        ):
            if pair is not None and kind in stat.kinds:
                results[stat.name] = _only_ok(stat.compute(pair), pair.names, status)
    return table


def _only_ok(
    result: StatisticResult, names: tuple[str, ...], status: dict[str, FeatureStatus]
) -> StatisticResult:
    ok = np.array([status[n] == "ok" for n in names], dtype=bool)
    if ok.all():
        return result
    p = None if result.p_values is None else np.where(ok, result.p_values, np.nan)
    return StatisticResult(result.name, np.where(ok, result.values, np.nan), p, result.drifted & ok)


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    statistics: Sequence[DriftStatistic] | None = None,
    min_rows: int = 100,
    bins: int = 20,
) -> DriftTable:
    """Sample against sample: profile all of ``reference`` (every value kept, not a
    sample, so KS and Wasserstein see the whole reference) and compare ``current`` to it."""
    profile = Profile.from_frame(reference, bins=bins, sample_size=max(len(reference), 1))
    return compare_to_profile(profile, current, statistics=statistics, min_rows=min_rows)
