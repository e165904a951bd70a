"""The model server: validation, enrichment, dynamic batching, cache, explanations,
metrics and a durable audit trail, as a Starlette app (``create_app``)."""

from __future__ import annotations

from driftloop.serving._app import create_app
from driftloop.serving._auth import actor_name, token_digest, token_matches
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._board import WorkerBoard, WorkerReport
from driftloop.serving._cache import PredictionCache
from driftloop.serving._feature_store import FeatureStoreSource
from driftloop.serving._features import EnrichedRow, FeatureSource, InMemoryFeatureSource
from driftloop.serving._http import GuardedHttpProtocol
from driftloop.serving._model import DirectoryModelSource, InMemoryModelSource, ModelSource
from driftloop.serving._recommend import Recommenders
from driftloop.serving._recommend_arms import RecommenderArms, ServedRecommender
from driftloop.serving._recommend_service import RecommenderService
from driftloop.serving._registry_source import RegistryModelSource
from driftloop.serving._scored import ServedModel

__all__ = [
    "DirectoryModelSource",
    "DynamicBatcher",
    "EnrichedRow",
    "FeatureSource",
    "FeatureStoreSource",
    "GuardedHttpProtocol",
    "InMemoryFeatureSource",
    "InMemoryModelSource",
    "ModelSource",
    "PredictionCache",
    "RecommenderArms",
    "RecommenderService",
    "Recommenders",
    "RegistryModelSource",
    "ServedModel",
    "ServedRecommender",
    "WorkerBoard",
    "WorkerReport",
    "actor_name",
    "create_app",
    "token_digest",
    "token_matches",
]
