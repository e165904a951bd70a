"""What a model version is compared against, and where the monitor finds it.

A :class:`Reference` is a version's training :class:`~driftloop.stats.Profile` (inputs
and held-out scores), its task (classes, the metric it is judged on), its baseline
:class:`Performance` on held-out labelled data and, for a multiclass model, how often the
held-out rows were predicted each class. :class:`RegistryReferences` reads them from the
registry, where the training pipeline's ``evaluate`` and ``register`` steps stored them;
:class:`StaticReferences` holds references in memory (tests, exported JSON files).

The baseline holds the version's registered metrics of its task (those of
:func:`driftloop.stats.evaluate`, with their ``<metric>_se``), ``rows`` as ``labelled``:

===========  ======================================================================
task         metrics read
===========  ======================================================================
binary       ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``, ``ece``, ``accuracy``,
             ``positive_rate``, ``mean_score`` (else the mean of the training scores'
             profile), ``precision_at_{t}`` and ``recall_at_{t}``: the monitor reads
             them at its ``decision_threshold`` ``t`` (a version evaluated at another
             threshold has no recall to compare: ROC AUC alone judges it)
multiclass   ``log_loss``, ``accuracy``, ``macro_f1``, ``recall:<class>``
regression   ``rmse``, ``mae``, ``r2``, ``mean_label``, ``mean_value``
===========  ======================================================================

A version without ``rows``, or without any metric of its task (registered by hand), has
no baseline: its inputs and outputs are still judged for drift, but never concept drift.
Versions of the first signature format are binary classifiers of 0/1 labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from driftloop.core.errors import ModelNotFoundError
from driftloop.monitoring._bands import Bands
from driftloop.monitoring._performance import Performance
from driftloop.registry import Registry, Signature
from driftloop.stats import METRICS, TASKS, NumericProfile, Profile

__all__ = [
    "Reference",
    "ReferenceSource",
    "RegistryReferences",
    "StaticReferences",
    "baseline_from_metrics",
    "served_profile",
]


@dataclass(frozen=True)
class Reference:
    """What a model version is compared against (see the module docs). ``metric`` None
    is the task's default (``roc_auc``, ``log_loss``, ``rmse``); ``prediction_classes``
    counts the held-out rows per predicted class (multiclass); ``bands`` are the alert
    bands learned from the version's reference period (:func:`~driftloop.monitoring.
    learn_bands`), used with ``[monitoring] thresholds = "learned"``."""

    profile: Profile
    baseline: Performance | None = None
    task: str = "binary"
    classes: tuple[str, ...] = ()
    metric: str | None = None
    prediction_classes: Mapping[str, int] = field(default_factory=dict)
    bands: Bands | None = None

    @property
    def judged_metric(self) -> str:
        """The metric the model is judged on."""
        return self.metric or TASKS.get(self.task, TASKS["binary"]).default_metric

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the profile as :meth:`Profile.to_dict` writes it)."""
        return {
            "profile": self.profile.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "task": self.task,
            "classes": list(self.classes),
            "metric": self.metric,
            "prediction_classes": dict(self.prediction_classes),
            "bands": self.bands.to_dict() if self.bands else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Read what :meth:`to_dict` wrote (files of earlier versions: binary)."""
        base, bands = data.get("baseline"), data.get("bands")
        return cls(
            Profile.from_dict(data["profile"]),
            Performance.from_dict(base) if base else None,
            str(data.get("task") or "binary"),
            tuple(str(c) for c in data.get("classes") or ()),
            data.get("metric"),
            _class_counts(data.get("prediction_classes")),
            Bands.from_dict(bands) if bands else None,
        )


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


_SCALARS = ("positive_rate", "mean_score", "mean_label", "mean_value")


def _is_metric(key: str) -> bool:
    return (
        key in METRICS
        or key in _SCALARS
        or (key.endswith("_se") and key[:-3] in METRICS)
        or key.startswith(("precision_at_", "recall_at_", "recall:"))
    )


def baseline_from_metrics(
    metrics: Mapping[str, Any],
    *,
    threshold: float,
    prediction: NumericProfile | None = None,
    task: str = "binary",
    classes: Sequence[str] = (),
    metric: str | None = None,
) -> Performance | None:
    """The held-out baseline of a version from its registered ``metrics`` (see the module
    docs); None without ``rows`` or without any metric of ``task``.

    >>> b = baseline_from_metrics({"rows": 2000.0, "positive_rate": 0.01, "roc_auc": 0.9,
    ...                            "recall_at_0.5": 0.6}, threshold=0.5)
    >>> b.labelled, b.positives, b.roc_auc, b.recall, math.isnan(b.precision)
    (2000, 20, 0.9, 0.6, True)
    >>> r = baseline_from_metrics({"rows": 500, "rmse": 3.2, "rmse_se": 0.1},
    ...                           threshold=0.5, task="regression")
    >>> r.task, r.get("rmse"), r.se("rmse")
    ('regression', 3.2, 0.1)
    """
    rows = _number(metrics, "rows")
    if not math.isfinite(rows) or rows < 1:
        return None
    spec = TASKS.get(task, TASKS["binary"])
    kept = {k: _number(metrics, k) for k in metrics if _is_metric(str(k))}
    kept = {k: v for k, v in kept.items() if math.isfinite(v)}
    judged = {*spec.metrics, *([metric] if metric else [])}
    if not any(name in kept for name in judged):
        return None
    counts: dict[str, int] = {}
    if spec.name == "binary":
        if "mean_score" not in kept and prediction is not None and prediction.count:
            kept["mean_score"] = float(prediction.mean)
        names = tuple(classes) if len(classes) == 2 else ("0", "1")
        rate = kept.get("positive_rate", math.nan)
        positives = round(rows * rate) if math.isfinite(rate) else 0
        counts = {names[0]: int(rows) - positives, names[1]: positives}
    return Performance(spec.name, int(rows), kept, counts, threshold)


def _class_counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float) and v > 0}


def served_profile(profile: Profile, signature: Signature) -> Profile:
    """The profile as served records spell the inputs: a boolean feature that training
    profiled as text (a column of ``True``/``False`` with nulls) becomes numbers 0/1, as
    the audit log keeps booleans."""
    booleans = [
        f.name for f in signature.features if f.kind == "boolean" and f.name in profile.categorical
    ]
    if not booleans:
        return profile
    numeric, categorical = dict(profile.numeric), dict(profile.categorical)
    spelled = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}
    for name in booleans:
        p = categorical.pop(name)
        parts = [
            np.full(count, spelled.get(category.lower(), np.nan))
            for category, count in zip(p.categories, p.counts, strict=True)
        ]
        values = np.concatenate([*parts, np.full(p.nulls, np.nan)])
        numeric[name] = Profile.from_frame(pd.DataFrame({name: values})).numeric[name]
    return Profile(profile.rows, numeric, categorical, profile.prediction)


class RegistryReferences:
    """References read from the registry: each version's stored profile, task and
    held-out metrics, with precision and recall read at ``threshold`` (the monitor's
    ``decision_threshold``).

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
            found = self.registry.get(model, version)
        except ModelNotFoundError:
            return None  # records of a version the registry does not know: not judged
        if profile is None:
            return None
        signature, metrics = found.signature, found.metrics
        task = signature.task if signature.task in TASKS else "binary"
        profile = served_profile(profile, signature)
        baseline = baseline_from_metrics(
            metrics,
            threshold=self.threshold,
            prediction=profile.prediction,
            task=task,
            classes=signature.classes,
            metric=signature.metric,
        )
        return Reference(
            profile,
            baseline,
            task,
            tuple(signature.classes),
            signature.metric,
            _class_counts(metrics.get("prediction_classes")),
        )

    def models(self) -> list[str]:
        """Names of the registry's models (what the monitor watches by default)."""
        return [str(m["name"]) for m in self.registry.list_models()]
