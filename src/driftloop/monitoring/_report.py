"""A drift report of one window: drift of inputs and outputs, data problems, realized
performance against the reference, and the verdict.

The verdict tells apart the two things a team does differently about:

* ``"data-drift"``: inputs or outputs moved (a feature's deciding statistic, the score's
  PSI, a multiclass model's predicted-class mix), or inputs went missing or took values
  never seen in training, while realized performance holds (or is not known yet): watch,
  fix the data, maybe retrain on fresh data;
* ``"concept-drift"``: the model's own metric fell significantly against the reference
  (see :mod:`driftloop.monitoring._concept`): the relation between inputs and labels
  changed, retrain now;
* ``"estimated-drop"``: no labels yet to judge realized performance by, but the
  performance estimated from the scores (CBPE, binary models, see
  :mod:`driftloop.monitoring._estimated`) fell: the inputs moved to where the model is
  less sure, expect the realized metric to follow;
* ``"no-drift"``, and ``"insufficient-data"`` for a window too small to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring._bands import Bands, apply_drift_bands, band_checks
from driftloop.monitoring._concept import MetricCheck, check_performance, judged_metrics
from driftloop.monitoring._estimated import (
    ESTIMATED,
    estimated_performance,
    held_out_gap,
    reference_estimate,
)
from driftloop.monitoring._inputs import (
    UnseenCategories,
    as_profiled,
    missing_rates,
    unseen_categories,
)
from driftloop.monitoring._outputs import predicted_classes
from driftloop.monitoring._performance import Performance, window_performance
from driftloop.monitoring._references import Reference
from driftloop.monitoring._verdict import DECIDING, Signals, Verdict
from driftloop.monitoring._verdict import verdict as judge
from driftloop.stats import (
    CategoricalProfile,
    ChiSquare,
    DriftStatistic,
    DriftTable,
    JensenShannon,
    KLDivergence,
    KolmogorovSmirnov,
    NumericProfile,
    PopulationStabilityIndex,
    Profile,
    Wasserstein,
    compare_to_profile,
)

__all__ = ["PREDICTED_CLASS", "DriftReport", "Verdict", "assess", "outputs_drift", "statistics_for"]

PREDICTED_CLASS = "predicted_class"
"""The name of a multiclass model's predicted class among the outputs' statistics."""


@dataclass(frozen=True, eq=False)
class DriftReport:
    """The assessment of one window of one model version and route.

    ``checks`` compare the judged metrics with the reference (concept drift when one
    ``dropped``); ``missing_rates`` is the share of records missing each feature (the
    audit log's ``missing``; empty for records without it); ``unseen`` the categorical
    features with values never seen in training. ``estimated`` is the performance
    estimated from the scores (binary models; ``estimation_note`` says why there is none),
    ``estimated_checks`` its judged metrics against the reference; ``thresholds`` says what
    judged the window (``"fixed"``, or ``"learned"`` with its ``bands``).
    """

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
    task: str = "binary"
    metric: str = "roc_auc"
    checks: tuple[MetricCheck, ...] = ()
    missing_rates: Mapping[str, float] = field(default_factory=dict)
    unseen: Mapping[str, UnseenCategories] = field(default_factory=dict)
    estimated: Performance | None = None
    estimated_checks: tuple[MetricCheck, ...] = ()
    estimation_note: str = ""
    thresholds: str = "fixed"
    bands: Bands | None = None

    @property
    def prediction_drift(self) -> float:
        """PSI of the score distribution against the reference scores (NaN if unknown)."""
        return self.prediction.value("psi", "score") if self.prediction else math.nan

    @property
    def class_mix_drift(self) -> float:
        """Jensen-Shannon distance of a multiclass model's predicted-class mix from the
        reference's (NaN when not judged)."""
        if self.prediction is None:
            return math.nan
        return self.prediction.value(DECIDING["categorical"], PREDICTED_CLASS)

    @property
    def dropped_metrics(self) -> tuple[str, ...]:
        """The judged metrics that fell (what made the window concept drift)."""
        return tuple(c.metric for c in self.checks if c.dropped)

    @property
    def estimated_drops(self) -> tuple[str, ...]:
        """The estimated metrics that fell."""
        return tuple(c.metric for c in self.estimated_checks if c.dropped)

    def _estimate_signal(self) -> dict[str, object] | None:
        """What the loop's ``estimated_performance`` trigger reads: ``dropped`` when an
        estimated metric fell while realized performance was not judged (the
        ``estimated-drop`` verdict's rule), with the estimated metrics and those that fell."""
        if self.estimated is None:
            return None
        shown = {n: self.estimated.get(n) for n in ESTIMATED}
        return {
            "dropped": bool(self.estimated_drops) and not self.checks,
            "dropped_metrics": list(self.estimated_drops),
            "metrics": {n: v for n, v in shown.items() if math.isfinite(v)},
            "thresholds": self.thresholds,
        }

    def feature_frame(self) -> pd.DataFrame:
        """One row per feature: kind, status, drifted, missing rate (when the records say)
        and one column per statistic."""
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
        if self.missing_rates:
            base["missing_rate"] = [self.missing_rates.get(f, 0.0) for f in base.index]
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
            "class_mix_js": _finite(self.class_mix_drift),
            "task": self.task,
            "metric": self.metric,
            "performance": self.performance.to_dict() if self.performance else None,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "checks": [_check(c) for c in self.checks],
            "estimated": self.estimated.to_dict() if self.estimated else None,
            "estimated_checks": [_check(c) for c in self.estimated_checks],
            "estimated_performance": self._estimate_signal(),
            "estimation_note": self.estimation_note,
            "thresholds": self.thresholds,
            "missing_rates": {k: v for k, v in self.missing_rates.items() if v > 0},
            "unseen_categories": {
                k: {"share": u.share, "categories": list(u.categories[:20])}
                for k, u in self.unseen.items()
            },
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _check(c: MetricCheck) -> dict[str, object]:
    return {
        "metric": c.metric,
        "now": c.now,
        "reference": c.reference,
        "change": _finite(c.change),
        "limit": c.limit,
        "standard_errors": _finite(c.z),
        "dropped": c.dropped,
        "basis": c.basis,
    }


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


def outputs_drift(
    reference: Reference,
    window: pd.DataFrame,
    statistics: Sequence[DriftStatistic],
    config: MonitoringConfig,
    score: str,
) -> DriftTable | None:
    """The score against the reference's held-out scores and, for a multiclass model, the
    predicted-class mix against the held-out one."""
    numeric: dict[str, NumericProfile] = {}
    categorical: dict[str, CategoricalProfile] = {}
    frame: dict[str, NDArray[Any]] = {}
    if reference.profile.prediction is not None and score in window.columns:
        numeric["score"] = reference.profile.prediction
        frame["score"] = window[score].to_numpy(dtype=np.float64, na_value=np.nan)
    if reference.task == "multiclass" and reference.prediction_classes:
        classes = predicted_classes(window, reference.classes)
        if classes is not None:
            mix = reference.prediction_classes
            categorical[PREDICTED_CLASS] = CategoricalProfile(
                PREDICTED_CLASS, sum(mix.values()), 0, tuple(mix), tuple(mix.values())
            )
            frame[PREDICTED_CLASS] = classes.to_numpy(dtype=object)
    if not frame:
        return None
    profile = Profile(reference.profile.rows, numeric, categorical)
    return compare_to_profile(
        profile, pd.DataFrame(frame), statistics=statistics, min_rows=config.min_rows
    )


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
        reference.profile,
        as_profiled(window, reference.profile),
        statistics=stats,
        min_rows=config.min_rows,
    )
    prediction = outputs_drift(reference, window, stats, config, score)
    bands = reference.bands if config.thresholds == "learned" else None
    if bands is not None:
        features = apply_drift_bands(features, bands)
        prediction = apply_drift_bands(prediction, bands) if prediction is not None else None
    performance = window_performance(
        window,
        task=reference.task,
        classes=reference.classes,
        threshold=config.decision_threshold,
        min_labelled=config.min_labelled,
        score=score,
        label=label,
    )
    checks = _realized_checks(performance, reference, config, bands)
    estimated, estimation_note = estimated_performance(
        window,
        task=reference.task,
        threshold=config.decision_threshold,
        score=score,
        ece=reference.baseline.ece if reference.baseline is not None else math.nan,
        max_ece=config.estimation_max_ece,
        calibration=reference.bands.calibration if reference.bands else None,
    )
    estimated, estimation_note = _trusted(estimated, estimation_note, reference, config)
    estimated_checks = _estimated_checks(estimated, reference, config, bands)
    signals = Signals(
        features,
        prediction,
        _drifted(features),
        missing_rates(window),
        unseen_categories(features, reference.profile),
    )
    verdict, reasons, drifted = judge(
        len(window), signals, performance, reference, (checks, estimated_checks), config
    )
    if config.thresholds == "learned" and bands is None:
        reasons.append(
            "thresholds: no learned bands for this version (no reference period was learned "
            "from), so the fixed ones judged it"
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
        task=reference.task,
        metric=reference.judged_metric,
        checks=tuple(checks),
        missing_rates=signals.missing_rates,
        unseen=signals.unseen,
        estimated=estimated,
        estimated_checks=tuple(estimated_checks),
        estimation_note=estimation_note,
        thresholds="learned" if bands is not None else "fixed",
        bands=bands,
    )


def _realized_checks(
    performance: Performance | None,
    reference: Reference,
    config: MonitoringConfig,
    bands: Bands | None,
) -> list[MetricCheck]:
    """The judged metrics against their learned bands, or the fixed thresholds."""
    if performance is None:
        return []
    names = judged_metrics(reference.task, reference.metric, performance, config.decision_threshold)
    checks, fixed = (
        band_checks(performance, bands.performance, names, config.drop_z) if bands else ([], names)
    )
    if fixed and reference.baseline is not None:
        checks += [
            c
            for c in check_performance(
                performance,
                reference.baseline,
                config,
                task=reference.task,
                metric=reference.metric,
            )
            if c.metric in fixed
        ]
    return checks


def _trusted(
    estimated: Performance | None, note: str, reference: Reference, config: MonitoringConfig
) -> tuple[Performance | None, str]:
    """Raw scores (no calibration learned) are trusted as probabilities only when their
    estimate on the version's held-out scores comes within ``max_auc_drop`` of the ROC
    AUC realized there."""
    if estimated is None or reference.bands is not None or reference.baseline is None:
        return estimated, note
    before = reference_estimate(reference.profile, config.decision_threshold)
    gap = held_out_gap(before, reference.baseline)
    if before is not None and gap > config.max_auc_drop:
        return None, (
            f"performance not estimated: on the version's held-out scores the estimated ROC "
            f"AUC {before.roc_auc:.3f} is {gap:.3f} from the realized "
            f"{reference.baseline.roc_auc:.3f} (more than monitoring.max_auc_drop "
            f"{config.max_auc_drop:g}), so the scores are not calibrated probabilities; learn "
            "a reference period to calibrate them (driftloop monitor learn)"
        )
    return estimated, note


def _estimated_checks(
    estimated: Performance | None,
    reference: Reference,
    config: MonitoringConfig,
    bands: Bands | None,
) -> list[MetricCheck]:
    """Estimated ROC AUC and recall against their learned bands, or with the fixed
    thresholds against the estimate on the reference's held-out scores."""
    if estimated is None:
        return []
    names = ["roc_auc", f"recall_at_{config.decision_threshold:g}"]
    checks, fixed = (
        band_checks(estimated, bands.estimated, names, config.drop_z) if bands else ([], names)
    )
    calibration = reference.bands.calibration if reference.bands else None
    before = reference_estimate(reference.profile, config.decision_threshold, calibration)
    if fixed and before is not None:
        checks += [
            c
            for c in check_performance(estimated, before, config, task="binary", metric="roc_auc")
            if c.metric in fixed
        ]
    return [replace(c, estimated=True) for c in checks]
