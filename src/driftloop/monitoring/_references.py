"""Where the monitor finds what a model version is compared against.

The registry stores, with every version, the reference :class:`~driftloop.stats.Profile`
(inputs and scores, computed once at training time) and the held-out metrics of the
training pipeline's ``evaluate`` step. :class:`RegistryReferences` turns those into a
:class:`Reference` (profile + baseline :class:`Performance`);
:class:`StaticReferences` holds references in memory (tests, exported JSON files).

The baseline is read from these metrics of the version:

========================  ======================================================
``Performance`` field     metric of the version
========================  ======================================================
``labelled``              ``rows`` (held-out test rows)
``positives``             ``rows`` x ``positive_rate``, rounded
``roc_auc``, ``ece``      ``roc_auc``, ``ece``
``positive_rate``         ``positive_rate``
``precision``, ``recall`` ``precision_at_{t}``, ``recall_at_{t}`` for the monitor's
                          ``decision_threshold`` ``t`` (NaN when the version lacks them:
                          the recall check is then skipped, ROC AUC still judges)
``mean_score``            ``mean_score``, else the mean of the training scores' profile
========================  ======================================================

A version without ``rows`` or ``roc_auc`` has no baseline: the monitor still judges drift
of inputs and scores, but cannot call concept drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from driftloop.core.errors import ModelNotFoundError
from driftloop.monitoring._performance import Performance
from driftloop.monitoring._report import Reference
from driftloop.registry import Registry
from driftloop.stats import NumericProfile

__all__ = ["ReferenceSource", "RegistryReferences", "StaticReferences", "baseline_from_metrics"]


@runtime_checkable
class ReferenceSource(Protocol):
    """Reference profiles by model version (the registry stores them with each version)."""

    def reference(self, model: str, version: int) -> Reference | None:
        """The reference of ``model`` version ``version``, or None when it has none."""
        ...


class StaticReferences:
    """References held in memory, keyed by ``(model, version)``."""

    def __init__(self, references: Mapping[tuple[str, int], Reference]) -> None:
        self._references = dict(references)

    def reference(self, model: str, version: int) -> Reference | None:
        return self._references.get((model, version))


def _number(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key)
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def baseline_from_metrics(
    metrics: Mapping[str, Any],
    *,
    threshold: float,
    prediction: NumericProfile | None = None,
) -> Performance | None:
    """The held-out baseline of a version from its registered ``metrics`` (see the module
    docs for which metric fills which field); None without ``rows`` and ``roc_auc``.

    >>> b = baseline_from_metrics({"rows": 2000.0, "positive_rate": 0.01, "roc_auc": 0.9,
    ...                            "recall_at_0.5": 0.6}, threshold=0.5)
    >>> b.labelled, b.positives, b.roc_auc, b.recall, math.isnan(b.precision)
    (2000, 20, 0.9, 0.6, True)
    """
    rows, auc = _number(metrics, "rows"), _number(metrics, "roc_auc")
    if not (math.isfinite(rows) and math.isfinite(auc)) or rows < 1:
        return None
    positive_rate = _number(metrics, "positive_rate")
    positives = round(rows * positive_rate) if math.isfinite(positive_rate) else 0
    mean_score = _number(metrics, "mean_score")
    if math.isnan(mean_score) and prediction is not None:
        mean_score = float(prediction.mean)
    return Performance(
        labelled=int(rows),
        positives=int(positives),
        roc_auc=auc,
        precision=_number(metrics, f"precision_at_{threshold:g}"),
        recall=_number(metrics, f"recall_at_{threshold:g}"),
        ece=_number(metrics, "ece"),
        mean_score=mean_score,
        positive_rate=positive_rate,
    )


class RegistryReferences:
    """References read from the registry: each version's stored profile, with a baseline
    from its held-out metrics at ``threshold`` (the monitor's ``decision_threshold``).

    Versions are immutable, so each reference is read once and kept.
    """

    def __init__(self, registry: Registry, *, threshold: float = 0.5) -> None:
        self.registry = registry
        self.threshold = threshold
        self._cache: dict[tuple[str, int], Reference | None] = {}

    def reference(self, model: str, version: int) -> Reference | None:
        key = (model, version)
        if key not in self._cache:
            self._cache[key] = self._read(model, version)
        return self._cache[key]

    def _read(self, model: str, version: int) -> Reference | None:
        try:
            profile = self.registry.profile(model, version)
            metrics = self.registry.get(model, version).metrics
        except ModelNotFoundError:
            return None  # records of a version the registry does not know: not judged
        if profile is None:
            return None
        baseline = baseline_from_metrics(
            metrics, threshold=self.threshold, prediction=profile.prediction
        )
        return Reference(profile, baseline)

    def models(self) -> list[str]:
        """Names of the registry's models (what the monitor watches by default)."""
        return [str(m["name"]) for m in self.registry.list_models()]
