"""Release gates: is a candidate model fit to replace the champion? Gates that a broken
model cannot pass: a constant model, one trained on null features or one that learnt a
leaked label all fail, each with the number that shows why.

>>> import numpy as np
>>> from driftloop.stats import Outputs, TASKS, baseline, evaluate
>>> y = np.array([0, 1] * 200)
>>> prior = evaluate(baseline(TASKS["binary"], y, classes=2).outputs(len(y)), y)
>>> constant = Outputs("binary", np.full(len(y), 0.5), ("0", "1"))
>>> report = release_gates(GatesConfig(), metric="roc_auc", y_true=y, outputs=constant,
...                        baseline_metrics=prior, latency_ms=0.1)
>>> report.passed, [c.name for c in report.failed]
(False, ['baseline:roc_auc'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftloop.core.config import GatesConfig
from driftloop.core.errors import InsufficientDataError, InvalidParameterError
from driftloop.quality._report import GateCheck, GateReport
from driftloop.stats import (
    METRICS,
    Outputs,
    demographic_parity_difference,
    equal_opportunity_difference,
    evaluate,
    expected_calibration_error,
    skill,
)

__all__ = ["release_gates"]


def release_gates(
    config: GatesConfig,
    *,
    metric: str,
    y_true: ArrayLike,
    outputs: Outputs,
    baseline_metrics: Mapping[str, float],
    champion_outputs: Outputs | None = None,
    sensitive: ArrayLike | None = None,
    single_feature_skill: Mapping[str, float] | None = None,
    latency_ms: float | None = None,
    signature_problems: Sequence[str] = (),
    threshold: float = 0.5,
) -> GateReport:
    """Every release gate on the held-out rows (see :class:`GatesConfig` for each rule)."""
    if metric not in METRICS:
        raise InvalidParameterError(f"Metric {metric!r} is unknown; known: {', '.join(METRICS)}.")
    y = np.asarray(y_true)
    mine = evaluate(outputs, y, threshold=threshold)
    value, base = mine.get(metric, math.nan), baseline_metrics.get(metric, math.nan)
    checks = [_baseline(config, metric, value, base)]
    checks += [
        _limit(name, mine.get(name, math.nan), limit)
        for name, limit in sorted(config.metric_limits.items())
    ]
    checks.append(_champion(config, metric, value, champion_outputs, y, threshold))
    checks.append(_leakage(config, metric, value, base, single_feature_skill or {}))
    checks += _fairness(config, outputs, y, sensitive, metric)
    if outputs.task == "binary":
        ece = expected_calibration_error(y, outputs.raw)
        checks.append(
            GateCheck(
                "calibration_ece",
                ece <= config.max_ece,
                round(ece, 6),
                config.max_ece,
                f"ECE {ece:.4f}",
            )
        )
    if latency_ms is not None:
        checks.append(
            GateCheck(
                "latency",
                latency_ms <= config.max_latency_ms,
                round(latency_ms, 6),
                config.max_latency_ms,
                f"one-row scoring {latency_ms:.3f} ms (best of several rounds' medians)",
            )
        )
    problems = "; ".join(signature_problems)
    checks.append(
        GateCheck("signature", not problems, problems or "compatible", "compatible", problems)
    )
    return GateReport.of("release", checks)


def _baseline(config: GatesConfig, metric: str, value: float, base: float) -> GateCheck:
    gained = skill(metric, value, base)
    passed = math.isfinite(gained) and gained >= config.min_skill
    detail = (
        f"{metric} {value:.4f} vs {base:.4f} for the trivial baseline (prior or mean): "
        f"skill {gained:.3f}"
        + ("" if passed else f" < {config.min_skill}: no better than guessing")
    )
    return GateCheck(f"baseline:{metric}", passed, _round(gained), config.min_skill, detail)


def _limit(metric: str, value: float, limit: float) -> GateCheck:
    if metric not in METRICS:
        return GateCheck(f"limit:{metric}", False, None, limit, f"unknown metric {metric!r}")
    higher = METRICS[metric].higher_is_better
    passed = math.isfinite(value) and (value >= limit if higher else value <= limit)
    sign = ">=" if higher else "<="
    detail = f"{metric} {value:.4f}, required {sign} {limit}"
    return GateCheck(f"limit:{metric}", passed, _round(value), limit, detail)


def _champion(
    config: GatesConfig,
    metric: str,
    value: float,
    champion: Outputs | None,
    y: NDArray[np.generic],
    threshold: float,
) -> GateCheck:
    if champion is None:
        return GateCheck(
            f"vs_champion:{metric}", True, _round(value), None, "no champion to compare"
        )
    theirs = evaluate(champion, y, threshold=threshold).get(metric, math.nan)
    tolerance = config.champion_tolerance
    if METRICS[metric].higher_is_better:
        bound, passed = theirs * (1 - tolerance), value >= theirs * (1 - tolerance)
    else:
        bound, passed = theirs * (1 + tolerance), value <= theirs * (1 + tolerance)
    detail = (
        f"{metric} {value:.4f} vs champion {theirs:.4f} on the same rows "
        f"(tolerance {tolerance:.0%})"
    )
    return GateCheck(f"vs_champion:{metric}", bool(passed), _round(value), _round(bound), detail)


def _leakage(
    config: GatesConfig, metric: str, value: float, base: float, single: Mapping[str, float]
) -> GateCheck:
    limit = config.max_single_feature_skill
    finite = {f: s for f, s in single.items() if math.isfinite(s)}
    worst = max(finite, key=lambda f: finite[f]) if finite else None
    model_skill = skill(metric, value, base)
    if worst is not None and finite[worst] >= limit:
        detail = (
            f"feature '{worst}' alone predicts the label with skill {finite[worst]:.3f} "
            f">= {limit}: a leaked label (a copy of it, or something known only after the "
            "outcome)? Exclude it, or raise gates.max_single_feature_skill if it is real"
        )
        return GateCheck("leakage", False, _round(finite[worst]), limit, detail)
    if math.isfinite(model_skill) and model_skill >= 0.9999:
        detail = f"the model is perfect on held-out rows ({metric} {value:.4f}): a leaked label?"
        return GateCheck("leakage", False, _round(model_skill), limit, detail)
    shown = f"strongest single feature '{worst}': skill {finite[worst]:.3f}" if worst else ""
    return GateCheck("leakage", True, _round(finite[worst]) if worst else None, limit, shown)


def _fairness(
    config: GatesConfig,
    outputs: Outputs,
    y: NDArray[np.generic],
    sensitive: ArrayLike | None,
    metric: str,
) -> list[GateCheck]:
    attr = config.sensitive_attribute
    if not attr:
        return []
    if sensitive is None:
        detail = f"fairness attribute '{attr}' is configured but not in the training data"
        return [GateCheck(f"fairness:{attr}", False, "absent", "present", detail)]
    groups = np.asarray(sensitive, dtype=object)
    if outputs.task == "binary":
        cut, s = config.fairness_threshold, outputs.raw
        try:
            dp: float | None = demographic_parity_difference(s, groups, cut)
            eo: float | None = equal_opportunity_difference(y, s, groups, cut)
        except InsufficientDataError as exc:
            return [GateCheck(f"fairness:{attr}", False, None, None, str(exc))]
        limit_dp, limit_eo = (
            config.max_demographic_parity_difference,
            config.max_equal_opportunity_difference,
        )
        return [
            GateCheck(
                f"fairness_dp:{attr}",
                dp is not None and dp <= limit_dp,
                _round(dp),
                limit_dp,
                f"demographic parity difference {dp:.4f} across {attr}",
            ),
            GateCheck(
                f"fairness_eo:{attr}",
                eo is not None and eo <= limit_eo,
                _round(eo),
                limit_eo,
                f"equal opportunity difference {eo:.4f} across {attr}",
            ),
        ]
    values = groups.astype(str)
    by_group = {}
    for name in sorted(set(values)):
        mask = values == name
        by_group[name] = evaluate(outputs.take(mask), y[mask]).get(metric, math.nan)
    finite = [v for v in by_group.values() if math.isfinite(v)]
    if len(finite) < 2:
        detail = f"fewer than two groups of '{attr}' have a {metric}"
        return [GateCheck(f"fairness_gap:{attr}", False, None, None, detail)]
    overall = evaluate(outputs, y).get(metric, math.nan)
    gap = max(finite) - min(finite)
    if not METRICS[metric].higher_is_better and overall:  # errors: relative to the overall
        gap /= abs(overall)
    limit = config.max_group_metric_gap
    shown = ", ".join(f"{k} {v:.4f}" for k, v in by_group.items())
    return [
        GateCheck(
            f"fairness_gap:{attr}", gap <= limit, _round(gap), limit, f"{metric} by {attr}: {shown}"
        )
    ]


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
