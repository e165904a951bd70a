"""Checkpointed, resumable training pipelines with data and release gates."""

from __future__ import annotations

from driftloop.training._checkpoint import CheckpointStore
from driftloop.training._fit import default_estimator
from driftloop.training._pipeline import PipelineResult, StepRun, TrainingPipeline
from driftloop.training._run import train_and_promote
from driftloop.training._source import (
    SourceWindow,
    TrainingFrame,
    TrainingFrameFn,
    load_window,
    transaction_features,
)
from driftloop.training._store_frame import (
    FeatureStoreFrame,
    feature_store_frame,
    numeric_features,
)

__all__ = [
    "CheckpointStore",
    "FeatureStoreFrame",
    "PipelineResult",
    "SourceWindow",
    "StepRun",
    "TrainingFrame",
    "TrainingFrameFn",
    "TrainingPipeline",
    "default_estimator",
    "feature_store_frame",
    "load_window",
    "numeric_features",
    "train_and_promote",
    "transaction_features",
]
