"""``[recsys]``: how recommenders fall back for users they know little about, and the
business rules applied to every list they answer (docs/recsys.md).

>>> config = RecsysConfig.model_validate(
...     {"rules": {"max_per_genre": 2, "freshness_boost": 0.1}, "fallback": {"warm_min": 6}})
>>> config.rules.exclude_seen, config.rules.max_per_genre, config.fallback.warm_min
(True, 2, 6)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FallbackConfig", "IndexConfig", "RecsysConfig", "RecsysData", "RecsysRules"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class RecsysRules(_Section):
    """``[recsys.rules]``: applied to every list, whichever level answered.

    ``exclude_seen``: never recommend an item the user already interacted with (in
    training data or in the session). ``max_per_genre``: at most this many items sharing
    a genre (tag) in the top ``n`` (0: no limit). ``freshness_boost``: added to an item's
    normalised score in proportion to how recent it is (0 for the oldest item, the boost
    for the newest; 0: off).
    """

    exclude_seen: bool = True
    max_per_genre: int = Field(default=0, ge=0, le=1_000)
    freshness_boost: float = Field(default=0.0, ge=0.0, le=10.0)


class FallbackConfig(_Section):
    """``[recsys.fallback]``: which level answers a user.

    A user the model was trained on with at least ``warm_min`` interactions gets the
    personalized list when the model's ``confidence`` in it is at least
    ``min_confidence``; a user with at least one interaction gets the hybrid (content of
    the items seen); a user whose demographic cohort has at least ``cohort_min``
    interactions gets the cohort's popular items; anyone else the global popular items.
    ``candidates``: how many items retrieval hands the ranker per personalized user.
    """

    warm_min: int = Field(default=6, ge=1)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    cohort_min: int = Field(default=50, ge=1)
    candidates: int = Field(default=100, ge=10, le=10_000)


class RecsysData(_Section):
    """``[recsys.data.<model>]``: where a recommender's data lives, for the loop to
    retrain it (docs/recsys.md). Each of ``interactions``, ``users`` and ``items`` is a
    Parquet or CSV file (or glob, or ``duckdb:`` query) as ``[models.<name>] data`` is,
    relative to the project folder. Interactions have ``user_id``, ``item_id`` and
    ``timestamp``; users ``user_id`` and the ``user_features`` columns (``cohort``:
    those whose combination is a demographic cohort); items ``item_id``, the
    ``item_tags`` column (lists, or text split on ``|``) and optionally ``item_year``.
    ``holdout``: the latest share of the retraining window kept out of training, on
    which the new version and the champion are compared (offline NDCG@10)."""

    interactions: str
    users: str
    items: str
    user_features: tuple[str, ...] = ()
    item_tags: str = "genres"
    item_year: str | None = None
    cohort: tuple[str, ...] = ()
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0)


class IndexConfig(_Section):
    """``[recsys.index]``: the HNSW item index (hnswlib, inner product) retrieval asks.

    ``m``: links per item in the graph (memory and build time grow with it, and recall).
    ``ef_construction``: candidates weighed per item while building (build time grows with
    it, and the graph's quality). ``ef``: candidates weighed per query, at least the ``k``
    asked for (latency grows with it, and recall). The defaults reach top-100 recall
    0.982 at a one-query p99 of 0.61 ms on 1M items x 64 (docs/recsys.md, "ANN at scale");
    a catalogue of at most 480,000 items x dimensions is searched exactly, by a matrix
    product, and ``ef`` is not used (:data:`driftloop.recsys._index.EXACT_CELLS`).
    """

    m: int = Field(default=32, ge=2, le=200)
    ef_construction: int = Field(default=200, ge=1, le=10_000)
    ef: int = Field(default=200, ge=1, le=10_000)


class RecsysConfig(_Section):
    """``[recsys]``: fallback thresholds, rules and the item index (``[recsys.fallback]``,
    ``[recsys.rules]``, ``[recsys.index]``) and, per recommender, its data
    (``[recsys.data.<model>]``)."""

    rules: RecsysRules = RecsysRules()
    fallback: FallbackConfig = FallbackConfig()
    index: IndexConfig = IndexConfig()
    data: dict[str, RecsysData] = Field(default_factory=dict)
