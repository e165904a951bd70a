"""A drift report of two frames: a reference and a current one, outside any monitor.

With ``[monitoring] thresholds = "learned"`` the bands are learned from the reference
frame, cut into windows of the current frame's size (it needs ``reference_windows`` of
them at least; fewer, and the fixed thresholds judge, as the report's reasons say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import InvalidParameterError
from driftloop.monitoring._learn import learn_bands
from driftloop.monitoring._outputs import predicted_classes
from driftloop.monitoring._performance import window_performance
from driftloop.monitoring._records import record_columns
from driftloop.monitoring._references import Reference
from driftloop.monitoring._report import DriftReport, assess
from driftloop.monitoring._windows import WindowSpec
from driftloop.stats import Profile

__all__ = ["drift_report"]


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    score: str | None = "score",
    label: str | None = "label",
    features: Sequence[str] | None = None,
    config: MonitoringConfig | None = None,
    task: str = "binary",
    classes: Sequence[str] = (),
    metric: str | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` (two frames), with drift of outputs and
    realized performance when both frames have ``score`` (and ``label``) columns; for a
    ``multiclass`` model of ``classes`` also the predicted-class mix and the class
    probabilities of their ``outputs`` columns (when they have them).

    ``features`` default to every column that is not a record column.
    """
    config = config or MonitoringConfig()
    skip = set(record_columns()) | {score, label, "label_ts", "served_at", "missing", "outputs"}
    skip.add("tenant")  # the audit frame's, never a feature
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
        baseline = window_performance(
            reference,
            task=task,
            classes=classes,
            threshold=config.decision_threshold,
            score=score or "score",
            label=label,
        )
    mix: dict[str, int] = {}
    if task == "multiclass":
        predicted = predicted_classes(reference, classes)
        if predicted is not None:
            counts = predicted.value_counts()
            mix = {str(c): int(counts[c]) for c in classes if c in counts.index}
    reference_of = Reference(profile, baseline, task, tuple(classes), metric, mix)
    note = ""
    if config.thresholds == "learned" and len(current):
        try:
            bands = learn_bands(
                reference,
                reference_of,
                config,
                spec=WindowSpec("count", len(current)),
                score=score or "score",
                label=label or "label",
            )
        except InvalidParameterError as exc:
            note = f"thresholds: no learned bands ({exc}), so the fixed ones judged it"
        else:
            reference_of = replace(reference_of, bands=bands)
    report = assess(reference_of, current, config, score=score or "score", label=label or "label")
    if note:
        reasons = tuple(r for r in report.reasons if not r.startswith("thresholds: "))
        report = replace(report, reasons=(*reasons, note))
    return report
