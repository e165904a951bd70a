"""Pure, vectorised statistics with no I/O, shared by gates, registry and monitoring."""

from __future__ import annotations

from driftloop.stats._compare import DriftTable, FeatureStatus, compare_frames, compare_to_profile
from driftloop.stats._drift import (
    ChiSquare,
    DriftStatistic,
    FeatureKind,
    JensenShannon,
    KLDivergence,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    StatisticResult,
    Wasserstein,
    default_statistics,
)
from driftloop.stats._metrics import (
    brier_score,
    demographic_parity_difference,
    equal_opportunity_difference,
    expected_calibration_error,
    pr_auc,
    precision_recall_at,
    recall_at_fpr,
    roc_auc,
)
from driftloop.stats._pairs import CategoricalPair, EcdfSummary, NumericPair
from driftloop.stats._profile import CategoricalProfile, NumericProfile, Profile

__all__ = [
    "CategoricalPair",
    "CategoricalProfile",
    "ChiSquare",
    "DriftStatistic",
    "DriftTable",
    "EcdfSummary",
    "FeatureKind",
    "FeatureStatus",
    "JensenShannon",
    "KLDivergence",
    "KolmogorovSmirnov",
    "NumericPair",
    "NumericProfile",
    "PopulationStabilityIndex",
    "Profile",
    "StatisticResult",
    "Wasserstein",
    "brier_score",
    "compare_frames",
    "compare_to_profile",
    "default_statistics",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "expected_calibration_error",
    "pr_auc",
    "precision_recall_at",
    "recall_at_fpr",
    "roc_auc",
]
