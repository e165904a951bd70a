"""Reproducible example data: a card-transaction simulator with fraud and drift."""

from __future__ import annotations

from driftloop.data._fraud_project import FRAUD_MODEL_TOML, fraud_model_config
from driftloop.data._movielens import MOVIELENS_WHEEL, MovieLens, movielens_100k
from driftloop.data._scenario import DRIFT_KINDS, DriftKind, Scenario
from driftloop.data._simulator import Simulation, expected_fraud_rates, simulate_transactions
from driftloop.data._story import LABEL_KNOWN_AT, StoryData
from driftloop.data._story_fraud import FRAUD_STORY_FEATURES, fraud_story
from driftloop.data._story_regression import DELIVERY_FEATURES, delivery_story

__all__ = [
    "DELIVERY_FEATURES",
    "DRIFT_KINDS",
    "FRAUD_MODEL_TOML",
    "FRAUD_STORY_FEATURES",
    "LABEL_KNOWN_AT",
    "MOVIELENS_WHEEL",
    "DriftKind",
    "MovieLens",
    "Scenario",
    "Simulation",
    "StoryData",
    "delivery_story",
    "expected_fraud_rates",
    "fraud_model_config",
    "fraud_story",
    "movielens_100k",
    "simulate_transactions",
]
