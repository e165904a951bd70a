"""Recommendations with cold start: a two-tower retrieval model with its own ANN index,
a LightGBM ranker over point-in-time features, a fallback hierarchy (personalized ->
hybrid -> cohort -> popular) and business rules; trained, registered and served by the
same parts as every other model (docs/recsys.md).

Needs the ``recsys`` extra (PyTorch, implicit, hnswlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from driftloop.recsys._als import AlsBaseline
from driftloop.recsys._catalog import INTERACTION_COLUMNS, Catalog, Encoding, check_interactions
from driftloop.recsys._evaluate import Segments, evaluate_lists, segments
from driftloop.recsys._features import RANKING_FEATURES, Snapshot
from driftloop.recsys._levels import LEVELS, Level, Recommendation, RecommendRequest
from driftloop.recsys._metrics import (
    coverage,
    diversity,
    map_at_k,
    ndcg_at_k,
    novelty,
    recall_at_k,
    summarize,
)
from driftloop.recsys._popularity import Popularity, cohort_key
from driftloop.recsys._ranker import Ranker
from driftloop.recsys._split import Split, time_split

if TYPE_CHECKING:
    from driftloop.recsys._index import ItemIndex
    from driftloop.recsys._recommender import Recommender
    from driftloop.recsys._registry import SIGNATURE, load_recommender, register_recommender
    from driftloop.recsys._train import TrainConfig, train_recommender
    from driftloop.recsys._two_tower import TowerConfig, TwoTower, train_two_tower

# Names that need PyTorch or hnswlib (the recsys extra) load on first use, so the server
# and the CLI import this part without them (and say what to install when asked for it).
_HEAVY = {
    "ItemIndex": "_index",
    "Recommender": "_recommender",
    "SIGNATURE": "_registry",
    "load_recommender": "_registry",
    "register_recommender": "_registry",
    "TrainConfig": "_train",
    "train_recommender": "_train",
    "TowerConfig": "_two_tower",
    "TwoTower": "_two_tower",
    "train_two_tower": "_two_tower",
}


def __getattr__(name: str) -> Any:
    module = _HEAVY.get(name)
    if module is None:
        raise AttributeError(f"module 'driftloop.recsys' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(f"driftloop.recsys.{module}"), name)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"driftloop.recsys.{name} needs the recsys extra ({exc.name} is missing): "
            "pip install torch==2.13.0 'driftloop[recsys]'"
        ) from exc


__all__ = [
    "INTERACTION_COLUMNS",
    "LEVELS",
    "RANKING_FEATURES",
    "SIGNATURE",
    "AlsBaseline",
    "Catalog",
    "Encoding",
    "ItemIndex",
    "Level",
    "Popularity",
    "Ranker",
    "RecommendRequest",
    "Recommendation",
    "Recommender",
    "Segments",
    "Snapshot",
    "Split",
    "TowerConfig",
    "TrainConfig",
    "TwoTower",
    "check_interactions",
    "cohort_key",
    "coverage",
    "diversity",
    "evaluate_lists",
    "load_recommender",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "recall_at_k",
    "register_recommender",
    "segments",
    "summarize",
    "time_split",
    "train_recommender",
    "train_two_tower",
]
