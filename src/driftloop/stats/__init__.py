"""Pure, vectorised statistics with no I/O, shared by gates, registry and monitoring."""

from __future__ import annotations

from driftloop.stats._metrics import (  # evaluation, calibration, fairness (registry engineer)
    brier_score,
    demographic_parity_difference,
    equal_opportunity_difference,
    expected_calibration_error,
    pr_auc,
    recall_at_fpr,
    roc_auc,
)
from driftloop.stats._profile import CategoricalProfile, NumericProfile, Profile

__all__ = [
    "CategoricalProfile",
    "NumericProfile",
    "Profile",
    "brier_score",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "expected_calibration_error",
    "pr_auc",
    "recall_at_fpr",
    "roc_auc",
]
