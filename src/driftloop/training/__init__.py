"""Checkpointed, resumable training pipelines with data and release gates."""

from __future__ import annotations

from driftloop.training._checkpoint import CheckpointStore
from driftloop.training._fit import default_estimator
from driftloop.training._pipeline import PipelineResult, StepRun, TrainingPipeline
from driftloop.training._source import (
    SourceWindow,
    TrainingFrame,
    load_window,
    transaction_features,
)

__all__ = [
    "CheckpointStore",
    "PipelineResult",
    "SourceWindow",
    "StepRun",
    "TrainingFrame",
    "TrainingPipeline",
    "default_estimator",
    "load_window",
    "transaction_features",
]
