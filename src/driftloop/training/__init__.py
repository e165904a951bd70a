"""Checkpointed, resumable training pipelines for any tabular model, with data and
release gates."""

from __future__ import annotations

from driftloop.training._batch_source import file_batches
from driftloop.training._checkpoint import CheckpointStore
from driftloop.training._fit import default_estimator
from driftloop.training._inputs import model_inputs
from driftloop.training._pipeline import PipelineResult, StepRun, TrainingPipeline
from driftloop.training._run import train_and_promote
from driftloop.training._score import CHUNK_ROWS, ScoredChunk, score_rows
from driftloop.training._source import TableTrainingSource, TrainingSource, training_source
from driftloop.training._training_set import TrainingSet, build_training_set, parse_timestamps

__all__ = [
    "CHUNK_ROWS",
    "CheckpointStore",
    "PipelineResult",
    "ScoredChunk",
    "StepRun",
    "TableTrainingSource",
    "TrainingPipeline",
    "TrainingSet",
    "TrainingSource",
    "build_training_set",
    "default_estimator",
    "file_batches",
    "model_inputs",
    "parse_timestamps",
    "score_rows",
    "train_and_promote",
    "training_source",
]
