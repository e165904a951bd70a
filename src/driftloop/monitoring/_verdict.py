"""The verdict of a window from its signals: drifted features and outputs, inputs gone
missing or unseen, and the realized and estimated performance checks (see
:mod:`driftloop.monitoring._report` for what each verdict means)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring._concept import MetricCheck
from driftloop.monitoring._inputs import UnseenCategories, null_share
from driftloop.monitoring._performance import Performance, metric_label
from driftloop.monitoring._references import Reference
from driftloop.stats import DriftTable

__all__ = ["DECIDING", "Signals", "Verdict", "verdict"]

Verdict = Literal["no-drift", "data-drift", "estimated-drop", "concept-drift", "insufficient-data"]
DECIDING = {"numeric": "psi", "categorical": "jensen_shannon"}
"""The statistic that decides whether a feature drifted, by kind."""


@dataclass(frozen=True)
class Signals:
    features: DriftTable
    prediction: DriftTable | None
    drifted: list[str]
    missing_rates: dict[str, float]
    unseen: dict[str, UnseenCategories]


def verdict(
    rows: int,
    signals: Signals,
    performance: Performance | None,
    reference: Reference,
    judged: tuple[Sequence[MetricCheck], Sequence[MetricCheck]],
    config: MonitoringConfig,
) -> tuple[Verdict, list[str], list[str]]:
    """The verdict, its reasons, and the drifted features: those whose deciding statistic
    passed its threshold, whose values fall in categories never seen in training in more
    than ``max_missing_rate`` of rows (the model reads them as missing), or which are
    missing in more than ``max_missing_rate`` of rows beyond their share of nulls in
    training. ``judged`` are the realized checks and the estimated ones: an estimated
    drop counts only while realized performance is not judged."""
    checks, estimated = judged
    if rows < config.min_rows:
        few = f"{rows:,} record(s), fewer than monitoring.min_rows {config.min_rows}: not judged"
        return "insufficient-data", [few], []
    reasons: list[str] = []
    status = signals.features.status
    absent = [f for f, s in status.items() if s == "missing"]
    if absent:
        reasons.append(f"missing features: {', '.join(absent)}")
    dropped = [c for c in checks if c.dropped]
    reasons.extend(c.reason() for c in dropped)
    expected = [c for c in estimated if c.dropped] if not checks else []
    reasons.extend(c.reason() for c in expected)
    limit = config.max_missing_rate
    unfilled = {
        f: (rate, null_share(reference.profile, f))
        for f, rate in signals.missing_rates.items()
        if rate - null_share(reference.profile, f) > limit
    }
    for f, (rate, nulls) in unfilled.items():
        trained = f" ({nulls:.0%} null in training)" if nulls > 0 else ""
        reasons.append(f"{f} missing in {rate:.0%} of rows{trained}")
    unseen = {f: u for f, u in signals.unseen.items() if u.share > limit}
    listed = set(signals.drifted)
    drifted = [
        *signals.drifted,
        *(f for f in reference.profile.features if f not in listed and f in unseen),
        *(f for f in unfilled if f not in listed and f not in unseen),
    ]
    if drifted:
        shown = ", ".join(drifted[:10]) + (" ..." if len(drifted) > 10 else "")
        reasons.append(f"{len(drifted)} drifted feature(s): {shown}")
    for f, u in signals.unseen.items():
        if f in listed or f in unseen:
            names = ", ".join(u.categories[:5]) + (", ..." if len(u.categories) > 5 else "")
            reasons.append(f"{f}: {u.share:.0%} of values in categories never seen ({names})")
    outputs_moved = _outputs_reasons(signals.prediction)
    reasons.extend(outputs_moved)
    if dropped:
        return "concept-drift", reasons, drifted
    if expected:
        return "estimated-drop", reasons, drifted
    if drifted or outputs_moved:
        reasons.append(_performance_note(performance, reference, checks, estimated))
        return "data-drift", reasons, drifted
    return "no-drift", reasons, drifted


def _outputs_reasons(prediction: DriftTable | None) -> list[str]:
    if prediction is None:
        return []
    out = []
    psi = prediction.results.get("psi")
    if psi is not None and bool(psi.drifted.any()):
        out.append(f"score PSI {prediction.value('psi', 'score'):.3f}")
    pair = prediction.categorical
    js = prediction.categorical_results.get(DECIDING["categorical"])
    if pair is not None and js is not None and bool(js.drifted.any()):
        ref = pair.ref_counts[0] / max(pair.ref_counts[0].sum(), 1.0)
        cur = pair.cur_counts[0] / max(pair.cur_counts[0].sum(), 1.0)
        i = int(np.argmax(np.abs(cur - ref) * pair.mask[0]))
        out.append(
            f"predicted-class mix moved (JS {float(js.values[0]):.3f}): "
            f"{pair.categories[0][i]} {cur[i]:.0%} vs reference {ref[i]:.0%}"
        )
    return out


def _performance_note(
    performance: Performance | None,
    reference: Reference,
    checks: Sequence[MetricCheck],
    estimated: Sequence[MetricCheck],
) -> str:
    if performance is None:
        known = "realized performance unknown (no labelled records yet)"
        shown = [c.versus() for c in estimated if not c.dropped]
        return f"{known}; {'; '.join(shown)}" if shown else known
    if reference.baseline is None:
        return "realized performance not judged (the version has no held-out metrics)"
    if not checks:
        name = reference.judged_metric
        if math.isfinite(reference.baseline.get(name)) and not math.isfinite(performance.get(name)):
            # e.g. multiclass records without their class probabilities
            return f"realized performance not judged (the window has no {metric_label(name)})"
        return f"realized performance not judged (the reference has no {metric_label(name)})"
    return f"performance holds ({'; '.join(c.versus() for c in checks)})"
