"""Learned alert bands of a model version, and how a window is judged by them.

With ``[monitoring] thresholds = "learned"`` a window is judged against the variability
of each statistic over windows of the same size in the version's reference period (see
:func:`~driftloop.monitoring.learn_bands`), not against fixed numbers:

* a feature (or the score) drifts when a statistic's value is above its band (every
  statistic is banded on its value: KS and chi-square on their statistic, not the
  p-value that becomes tiny for any shift at large sizes);
* a realized metric falls when it is outside its band on the bad side (below for ROC AUC
  or recall, above for RMSE or log loss), the band widened to ``drop_z`` standard errors
  of the window's metric when it is narrower (a few reference windows can understate how
  much a window of few positives varies);
* an estimated metric (CBPE, binary models) likewise against the band of the estimates
  on the reference windows, so a bias of the estimator cancels out.

A statistic or metric without a band (too few reference windows had it) keeps its fixed
threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from driftloop.monitoring._concept import ERROR_METRICS, MetricCheck, standard_error
from driftloop.monitoring._performance import Performance
from driftloop.stats import Band, BandSide, Calibration, DriftTable, StatisticResult

__all__ = ["Bands", "apply_drift_bands", "band_checks", "metric_side"]


def metric_side(name: str) -> BandSide:
    """Which side of a metric's band is bad: ``"upper"`` for error metrics, else ``"lower"``."""
    return "upper" if name in ERROR_METRICS else "lower"


@dataclass(frozen=True)
class Bands:
    """The bands of one version: ``performance`` (realized metrics by name), ``estimated``
    (estimated metrics by name), ``drift`` (by ``(feature, statistic)``; the score is the
    feature ``"score"``), learned on ``windows`` reference windows of ``rows`` records
    (the median); ``calibration`` maps a binary model's scores to the share of positives
    seen at them in the reference period, for the estimates (None: not learned)."""

    windows: int
    rows: int
    performance: Mapping[str, Band] = field(default_factory=dict)
    estimated: Mapping[str, Band] = field(default_factory=dict)
    drift: Mapping[tuple[str, str], Band] = field(default_factory=dict)
    calibration: Calibration | None = None

    def describe(self) -> str:
        return f"learned on {self.windows} reference windows of about {self.rows:,} records"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "windows": self.windows,
            "rows": self.rows,
            "performance": {k: b.to_dict() for k, b in self.performance.items()},
            "estimated": {k: b.to_dict() for k, b in self.estimated.items()},
            "drift": [
                {"feature": f, "statistic": s, **b.to_dict()} for (f, s), b in self.drift.items()
            ],
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bands:
        return cls(
            int(data["windows"]),
            int(data["rows"]),
            {str(k): Band.from_dict(v) for k, v in data.get("performance", {}).items()},
            {str(k): Band.from_dict(v) for k, v in data.get("estimated", {}).items()},
            {
                (str(d["feature"]), str(d["statistic"])): Band.from_dict(d)
                for d in data.get("drift", [])
            },
            Calibration.from_dict(data["calibration"]) if data.get("calibration") else None,
        )


def apply_drift_bands(table: DriftTable, bands: Bands) -> DriftTable:
    """``table`` with each banded statistic's ``drifted`` decided by its band (a feature
    not judged, ``status`` other than ``"ok"``, never drifts)."""

    def rebanded(
        names: Iterable[str], results: Mapping[str, StatisticResult]
    ) -> dict[str, StatisticResult]:
        names = list(names)
        out: dict[str, StatisticResult] = {}
        for stat, result in results.items():
            drifted = result.drifted.copy()
            for i, name in enumerate(names):
                band = bands.drift.get((name, stat))
                if band is not None:
                    ok = table.status.get(name) == "ok"
                    drifted[i] = ok and band.breached(float(result.values[i]))
            out[stat] = replace(result, drifted=np.asarray(drifted, dtype=np.bool_))
        return out

    numeric = rebanded(table.numeric.names, table.results) if table.numeric else table.results
    categorical = (
        rebanded(table.categorical.names, table.categorical_results)
        if table.categorical
        else table.categorical_results
    )
    return replace(table, results=numeric, categorical_results=categorical)


def band_checks(
    current: Performance, bands: Mapping[str, Band], names: Iterable[str], drop_z: float = 0.0
) -> tuple[list[MetricCheck], list[str]]:
    """The metrics ``names`` of ``current`` against their bands (at least ``drop_z``
    standard errors of ``current``'s metric wide); also the names that have no band (or no
    value), to be judged by their fixed threshold."""
    checks: list[MetricCheck] = []
    unbanded: list[str] = []
    for name in names:
        band, now = bands.get(name), current.get(name)
        if band is None or not math.isfinite(now):
            unbanded.append(name)
            continue
        relative = name in ERROR_METRICS
        change = now - band.mean if relative else band.mean - now
        noise = drop_z * standard_error(current, name)
        if math.isfinite(noise) and noise > band.width:
            band = replace(band, min_width=noise)
        checks.append(
            MetricCheck(
                name,
                now,
                band.mean,
                change,
                band.width,
                False,
                band.std,
                band.breached(now),
                basis=band.describe(),
            )
        )
    return checks, unbanded
