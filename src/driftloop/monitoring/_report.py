"""A drift report of one window: feature drift, prediction drift, realized performance, verdict.

The verdict tells apart the two things a fraud team does differently about:

* ``"data-drift"``: inputs (or scores) moved but realized performance holds (or is not
  known yet) — watch, maybe retrain on fresh data;
* ``"concept-drift"``: realized performance dropped against the reference — the relation
  between inputs and labels changed, retrain now;
* ``"no-drift"``, and ``"insufficient-data"`` for a window too small to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring._performance import Performance, realized_performance
from driftloop.monitoring._records import record_columns
from driftloop.stats import (
    ChiSquare,
    DriftStatistic,
    DriftTable,
    JensenShannon,
    KLDivergence,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    Profile,
    Wasserstein,
    compare_to_profile,
)

__all__ = ["DriftReport", "Reference", "Verdict", "assess", "drift_report", "statistics_for"]

Verdict = Literal["no-drift", "data-drift", "concept-drift", "insufficient-data"]
DECIDING = {"numeric": "psi", "categorical": "jensen_shannon"}


@dataclass(frozen=True)
class Reference:
    """What a model version is compared against: its training profile (with the scores'
    profile) and its performance on held-out labelled data."""

    profile: Profile
    baseline: Performance | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the profile as :meth:`Profile.to_dict` writes it)."""
        return {
            "profile": self.profile.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Read what :meth:`to_dict` wrote."""
        base = data.get("baseline")
        baseline = None
        if base:
            baseline = Performance(
                labelled=int(base["labelled"]),
                positives=int(base["positives"]),
                roc_auc=float(base["roc_auc"]),
                precision=float(base["precision"]),
                recall=float(base["recall"]),
                ece=float(base["ece"]),
                mean_score=float(base["mean_score"]),
                positive_rate=float(base["positive_rate"]),
            )
        return cls(Profile.from_dict(data["profile"]), baseline)


@dataclass(frozen=True, eq=False)
class DriftReport:
    """The assessment of one window of one model version and route."""

    rows: int
    verdict: Verdict
    reasons: tuple[str, ...]
    features: DriftTable
    prediction: DriftTable | None
    performance: Performance | None
    baseline: Performance | None
    drifted_features: tuple[str, ...]
    model: str = ""
    version: int = 0
    route: str = ""
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def prediction_drift(self) -> float:
        """PSI of the score distribution against the reference scores (NaN if unknown)."""
        return self.prediction.value("psi", "score") if self.prediction else math.nan

    def feature_frame(self) -> pd.DataFrame:
        """One row per feature: kind, status, drifted, and one column per statistic."""
        long = self.features.to_frame()
        wide = long.dropna(subset=["statistic"]).pivot_table(
            index="feature", columns="statistic", values="value", aggfunc="first", dropna=False
        )
        base = pd.DataFrame(
            {
                "kind": pd.Series(self.features.kinds),
                "status": pd.Series(self.features.status),
            }
        )
        base["drifted"] = base.index.isin(self.drifted_features)
        out = base.join(wide, how="left")
        out.index.name = "feature"
        return out.sort_values(["drifted", "feature"], ascending=[False, True])

    def summary(self) -> dict[str, object]:
        """The headline numbers, JSON-ready."""
        return {
            "model": self.model,
            "version": self.version,
            "route": self.route,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": self.rows,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "drifted_features": list(self.drifted_features),
            "prediction_psi": _finite(self.prediction_drift),
            "performance": self.performance.to_dict() if self.performance else None,
            "baseline": self.baseline.to_dict() if self.baseline else None,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def statistics_for(config: MonitoringConfig) -> tuple[DriftStatistic, ...]:
    """Every statistic with the thresholds of ``config``."""
    return (
        PopulationStabilityIndex(config.psi_threshold),
        KolmogorovSmirnov(config.ks_alpha, config.ks_method),
        JensenShannon(config.js_threshold),
        KLDivergence(config.kl_threshold),
        Wasserstein(config.wasserstein_threshold),
        ChiSquare(config.chi_square_alpha),
    )


def _drifted(table: DriftTable) -> list[str]:
    out: list[str] = []
    for pair, results, kind in (
        (table.numeric, table.results, "numeric"),
        (table.categorical, table.categorical_results, "categorical"),
    ):
        deciding = results.get(DECIDING[kind])
        if pair is not None and deciding is not None:
            out.extend(n for n, d in zip(pair.names, deciding.drifted, strict=True) if d)
    return out


def assess(
    reference: Reference,
    window: pd.DataFrame,
    config: MonitoringConfig | None = None,
    *,
    score: str = "score",
    label: str = "label",
) -> DriftReport:
    """Compare one window of records against ``reference`` and give the verdict."""
    config = config or MonitoringConfig()
    stats = statistics_for(config)
    features = compare_to_profile(
        reference.profile, window, statistics=stats, min_rows=config.min_rows
    )
    prediction = None
    if reference.profile.prediction is not None and score in window.columns:
        scores = pd.DataFrame({"score": window[score].to_numpy(dtype=np.float64)})
        score_profile = Profile(reference.profile.rows, {"score": reference.profile.prediction})
        prediction = compare_to_profile(
            score_profile, scores, statistics=stats, min_rows=config.min_rows
        )
    performance = None
    if score in window.columns and label in window.columns:
        labels: NDArray[np.float64] = window[label].to_numpy(dtype=np.float64, na_value=np.nan)
        if int((~np.isnan(labels)).sum()) >= config.min_labelled:
            performance = realized_performance(
                window[score].to_numpy(dtype=np.float64),
                labels,
                threshold=config.decision_threshold,
            )
    drifted = _drifted(features)
    verdict, reasons = _verdict(
        len(window), features, prediction, drifted, performance, reference.baseline, config
    )
    return DriftReport(
        len(window),
        verdict,
        tuple(reasons),
        features,
        prediction,
        performance,
        reference.baseline,
        tuple(drifted),
    )


def _verdict(
    rows: int,
    features: DriftTable,
    prediction: DriftTable | None,
    drifted: Sequence[str],
    performance: Performance | None,
    baseline: Performance | None,
    config: MonitoringConfig,
) -> tuple[Verdict, list[str]]:
    if rows < config.min_rows:
        return "insufficient-data", [f"{rows} rows < min_rows {config.min_rows}"]
    reasons: list[str] = []
    missing = [f for f, s in features.status.items() if s == "missing"]
    if missing:
        reasons.append(f"missing features: {', '.join(missing)}")
    dropped = False
    if performance is not None and baseline is not None:
        for reason in _performance_drops(performance, baseline, config):
            dropped = True
            reasons.append(reason)
    if drifted:
        shown = ", ".join(drifted[:10]) + (" ..." if len(drifted) > 10 else "")
        reasons.append(f"{len(drifted)} drifted feature(s): {shown}")
    score_moved = prediction is not None and bool(prediction.results["psi"].drifted.any())
    if score_moved and prediction is not None:
        reasons.append(f"score PSI {prediction.value('psi', 'score'):.3f}")
    if dropped:
        return "concept-drift", reasons
    if drifted or score_moved:
        if performance is None or baseline is None:
            reasons.append("realized performance unknown (no labelled records yet)")
        else:
            reasons.append(f"performance holds (ROC AUC {performance.roc_auc:.3f})")
        return "data-drift", reasons
    return "no-drift", reasons


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil (1982) standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / max(positives * negatives, 1)
    return math.sqrt(max(var, 0.0))


def _performance_drops(
    current: Performance, baseline: Performance, config: MonitoringConfig
) -> list[str]:
    """Reasons for a significant fall of ROC AUC or recall below the reference."""
    out: list[str] = []
    auc_se = math.hypot(
        _auc_se(current.roc_auc, current.positives, current.labelled - current.positives),
        _auc_se(baseline.roc_auc, baseline.positives, baseline.labelled - baseline.positives),
    )
    rec_se = math.hypot(
        math.sqrt(current.recall * (1 - current.recall) / max(current.positives, 1)),
        math.sqrt(baseline.recall * (1 - baseline.recall) / max(baseline.positives, 1)),
    )
    for name, now, then, limit, se in (
        ("ROC AUC", current.roc_auc, baseline.roc_auc, config.max_auc_drop, auc_se),
        ("recall", current.recall, baseline.recall, config.max_recall_drop, rec_se),
    ):
        drop = then - now
        if math.isfinite(drop) and drop > limit and drop > config.drop_z * se:
            out.append(
                f"{name} {now:.3f} vs reference {then:.3f} (drop {drop:.3f} > {limit}, "
                f"{drop / se if se > 0 else math.inf:.1f} standard errors)"
            )
    return out


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    score: str | None = "score",
    label: str | None = "label",
    features: Sequence[str] | None = None,
    config: MonitoringConfig | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` (two frames), with prediction drift and
    realized performance when both frames have ``score`` (and ``label``) columns.

    ``features`` default to every column that is not a record column.
    """
    config = config or MonitoringConfig()
    skip = set(record_columns()) | {score, label}
    names = (
        list(features) if features is not None else [c for c in reference.columns if c not in skip]
    )
    has_score = score is not None and score in reference.columns
    profile = Profile.from_frame(
        reference[names],
        predictions=reference[score].to_numpy(dtype=np.float64) if has_score else None,
        sample_size=max(len(reference), 1),
    )
    baseline = None
    if has_score and label is not None and label in reference.columns:
        baseline = realized_performance(
            reference[score].to_numpy(dtype=np.float64),
            reference[label].to_numpy(dtype=np.float64, na_value=np.nan),
            threshold=config.decision_threshold,
        )
    return assess(
        Reference(profile, baseline),
        current,
        config,
        score=score or "score",
        label=label or "label",
    )
