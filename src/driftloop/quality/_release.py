"""Release gates: is a candidate model fit to replace the champion?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from driftloop.core.config import GatesConfig
from driftloop.core.errors import InsufficientDataError
from driftloop.quality._report import GateCheck, GateReport
from driftloop.stats import (
    demographic_parity_difference,
    equal_opportunity_difference,
    expected_calibration_error,
    roc_auc,
)

__all__ = ["release_gates"]


def release_gates(
    config: GatesConfig,
    *,
    y_true: ArrayLike,
    scores: ArrayLike,
    champion_scores: ArrayLike | None = None,
    sensitive: ArrayLike | None = None,
    latency_p99_ms: float | None = None,
    signature_problems: Sequence[str] = (),
) -> GateReport:
    """Run every release gate on the held-out window (the champion scored on the same rows).

    >>> cfg = GatesConfig(sensitive_attribute=None)
    >>> report = release_gates(cfg, y_true=[0, 0, 1, 1], scores=[0.1, 0.2, 0.7, 0.9],
    ...                        champion_scores=[0.1, 0.9, 0.2, 0.8], latency_p99_ms=0.1)
    >>> report.passed, [c.name for c in report.checks]
    (False, ['vs_champion_auc', 'calibration_ece', 'latency_p99', 'signature'])
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    auc = roc_auc(y, s)
    checks = []
    if champion_scores is None:
        checks.append(GateCheck("vs_champion_auc", True, round(auc, 6), None, "no champion yet"))
    else:
        champion_auc = roc_auc(y, champion_scores)
        floor = config.min_auc_ratio * champion_auc
        checks.append(
            GateCheck(
                "vs_champion_auc",
                auc >= floor,
                round(auc, 6),
                round(floor, 6),
                f"AUC {auc:.4f} vs champion {champion_auc:.4f} x {config.min_auc_ratio}",
            )
        )
    if sensitive is not None and config.sensitive_attribute:
        attr, cut = config.sensitive_attribute, config.fairness_threshold
        dp = demographic_parity_difference(s, sensitive, cut)
        checks.append(
            GateCheck(
                f"fairness_dp:{attr}",
                dp <= config.max_demographic_parity_difference,
                round(dp, 6),
                config.max_demographic_parity_difference,
                f"demographic parity difference {dp:.4f} across {attr}",
            )
        )
        try:
            eo: float | None = equal_opportunity_difference(y, s, sensitive, cut)
        except InsufficientDataError:
            eo = None
        checks.append(
            GateCheck(
                f"fairness_eo:{attr}",
                eo is not None and eo <= config.max_equal_opportunity_difference,
                None if eo is None else round(eo, 6),
                config.max_equal_opportunity_difference,
                "fewer than two groups have positives"
                if eo is None
                else f"equal opportunity difference {eo:.4f} across {attr}",
            )
        )
    ece = expected_calibration_error(y, s)
    checks.append(
        GateCheck(
            "calibration_ece",
            ece <= config.max_ece,
            round(ece, 6),
            config.max_ece,
            f"ECE {ece:.4f}",
        )
    )
    if latency_p99_ms is not None:
        checks.append(
            GateCheck(
                "latency_p99",
                latency_p99_ms <= config.max_p99_latency_ms,
                round(latency_p99_ms, 6),
                config.max_p99_latency_ms,
                f"p99 per-row predict {latency_p99_ms:.3f} ms",
            )
        )
    checks.append(
        GateCheck(
            "signature",
            not signature_problems,
            "; ".join(signature_problems) or "compatible",
            "compatible",
            "; ".join(signature_problems),
        )
    )
    return GateReport.of("release", checks)
