"""Retraining a model and judging the new version before any traffic reaches it.

:class:`PipelineRetrainer` runs the model's own training pipeline (the release gates
apply unchanged) on the rows of the policy's lookback; :func:`beats_champion` then asks
the new version to beat the stale champion on the most recent labelled window of the
audit log (both score the same labelled rows; ties go to the champion).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from driftloop.audit import AuditLog
from driftloop.core.config import Settings
from driftloop.core.errors import DriftloopError
from driftloop.registry import Registry
from driftloop.stats import METRICS, TASKS, evaluate
from driftloop.training import TrainingPipeline

__all__ = ["PipelineRetrainer", "Retrainer", "Trained", "beats_champion"]


@dataclass(frozen=True)
class Trained:
    """A retraining's outcome: the version registered (None: none was) and the release
    gates' report (``passed`` and ``checks``)."""

    version: int | None
    gate_report: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Retrainer(Protocol):
    """Trains ``model`` on its rows with event time in ``[start, end)`` and registers the
    version (without moving any alias)."""

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        """Train, gate and register; the outcome."""
        ...


class PipelineRetrainer:
    """The project's training pipeline of each model (``[models.<name>]``), as
    ``driftloop train`` runs it; a rerun after a crash finds its finished steps again."""

    def __init__(self, settings: Settings, registry: Registry, **pipeline_options: Any) -> None:
        self.settings = settings
        self.registry = registry
        self.options = pipeline_options

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        pipeline = TrainingPipeline.from_settings(
            self.settings,
            model,
            registry=self.registry,
            start=pd.Timestamp(start),
            end=pd.Timestamp(end),
            **self.options,
        )
        result = pipeline.run()
        version = result.version.version if result.version is not None else None
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
        return Trained(version, dict(result.gate_report), metrics)


def beats_champion(
    registry: Registry,
    audit: AuditLog,
    model: str,
    *,
    champion: int,
    challenger: int,
    now: datetime,
    window: timedelta,
    min_labelled: int,
    threshold: float = 0.5,
) -> tuple[bool | None, dict[str, Any]]:
    """Does ``challenger`` beat ``champion`` on the labelled rows of the last ``window``
    before ``now``? None when there are fewer than ``min_labelled`` of them (or the
    versions cannot score them), with the numbers either way."""
    frame = audit.window(now - window, now, model=model)
    labelled = frame.loc[frame["label"].notna() & (frame["route"].astype(str) != "shadow")]
    numbers: dict[str, Any] = {"labelled": len(labelled), "window": str(window)}
    if len(labelled) < min_labelled:
        numbers["note"] = f"fewer than {min_labelled} labelled rows"
        return None, numbers
    theirs = registry.get(model, challenger)
    if theirs.flavor == "recommender":  # a list has no per-row score to compare here
        numbers["note"] = "a recommender is judged offline (NDCG@10) by its retrainer"
        return None, numbers
    y = labelled["label"].to_numpy(dtype=np.float64)
    task = theirs.signature.task or "binary"
    metric = theirs.signature.metric or TASKS[task].default_metric
    numbers["metric"] = metric
    values = {}
    try:
        for role, version in (("champion", champion), ("challenger", challenger)):
            outputs = registry.load(model, version).predict_frame(labelled)
            values[role] = float(evaluate(outputs, y, threshold=threshold).get(metric, math.nan))
    except (DriftloopError, ValueError, KeyError) as exc:
        numbers["note"] = f"cannot score the labelled rows: {exc}"
        return None, numbers
    numbers.update(values)
    if not all(math.isfinite(v) for v in values.values()):
        numbers["note"] = f"{metric} is undefined on these rows"
        return None, numbers
    better = METRICS[metric].better(values["challenger"], values["champion"])
    return bool(better), numbers
