"""References read from the registry: each version's stored profile and held-out metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.monitoring import RegistryReferences, baseline_from_metrics
from driftloop.registry import Registry, Signature
from driftloop.stats import Profile
from registry_helpers import toy_lightgbm


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "artifacts"))
    yield reg
    reg.close()


def test_a_version_without_held_out_metrics_is_watched_for_drift_but_has_no_baseline(
    registry: Registry,
) -> None:
    model, X = toy_lightgbm()
    scores = model.predict_proba(X)[:, 1]
    profile = Profile.from_frame(X, predictions=scores)
    registry.register("fraud", model, signature=Signature.from_frame(X), profile=profile)
    registry.register("fraud", model, signature=Signature.from_frame(X))  # no profile
    references = RegistryReferences(registry)
    first = references.reference("fraud", 1)
    assert first is not None
    assert first.baseline is None
    assert first.profile.to_dict() == profile.to_dict()
    assert references.reference("fraud", 2) is None  # nothing to compare against
    assert references.reference("other", 1) is None
    assert references.models() == ["fraud"]


def test_precision_and_recall_are_read_at_the_monitors_decision_threshold() -> None:
    metrics = {"rows": 1000.0, "positive_rate": 0.05, "roc_auc": 0.91, "ece": 0.02,
               "precision_at_0.5": 0.7, "recall_at_0.5": 0.4, "mean_score": 0.06}  # fmt: skip
    at_half = baseline_from_metrics(metrics, threshold=0.5)
    assert at_half is not None
    assert (at_half.precision, at_half.recall, at_half.positives) == (0.7, 0.4, 50)
    # Evaluated at another threshold than the monitor's: recall unknown, AUC still judges.
    other = baseline_from_metrics(metrics, threshold=0.3)
    assert other is not None
    assert math.isnan(other.recall)
    assert other.roc_auc == 0.91
    assert baseline_from_metrics({"rows": 1000.0}, threshold=0.5) is None
