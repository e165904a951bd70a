"""A trained recommender: the two-tower model with its own item index, the ranker, the
popularity tables and the fallback hierarchy, answering batches of requests.

Levels (see :data:`~driftloop.recsys.LEVELS`), chosen per user by interaction count and
the model's confidence (``[recsys.fallback]``):

* ``personalized``: a user the model was trained on with at least ``warm_min``
  interactions: retrieval from the index (one query for the whole batch), then the
  ranker over the candidates; when the retrieval's confidence is under
  ``min_confidence`` the user falls to ``hybrid``.
* ``hybrid``: at least one interaction: the content (tags, year) of the items seen,
  blended with popularity.
* ``cohort``: no interaction, but demographics whose cohort has enough interactions.
* ``popular``: anyone else.

Every list then goes through the business rules (``[recsys.rules]``). A recommender is
immutable: a new version is a new object with its own index, swapped whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftloop.core.config import RecsysConfig
from driftloop.recsys._catalog import Encoding
from driftloop.recsys._features import Snapshot
from driftloop.recsys._index import ItemIndex
from driftloop.recsys._levels import Level, Recommendation, RecommendRequest
from driftloop.recsys._popularity import Popularity, cohort_key
from driftloop.recsys._ranker import Ranker
from driftloop.recsys._rules import apply_rules
from driftloop.recsys._two_tower import TwoTower

__all__ = ["Recommender"]

_HYBRID_POPULARITY = 0.3  # weight of (log) popularity beside content similarity


@dataclass
class Recommender:
    """Everything one version needs to answer; build with :func:`train_recommender` or
    load with :func:`load_recommender` (``version`` is the registry's, or ``"local"``)."""

    name: str
    version: str
    encoding: Encoding
    items: tuple[str, ...]  # every catalog item: index label k is items[k]
    model: TwoTower
    index: ItemIndex
    ranker: Ranker | None
    popularity: Popularity
    snapshot: Snapshot
    users: Mapping[str, Mapping[str, Any]]  # user -> features (demographics)
    content: NDArray[np.float32]  # items x tags, rows of unit length
    freshness: NDArray[np.float64]  # per item: 0 oldest .. 1 newest
    config: RecsysConfig
    temperature: float = 0.07

    def __post_init__(self) -> None:
        self._position = {item: k for k, item in enumerate(self.items)}
        self._known = frozenset(self.encoding.users)  # users with a learned embedding

    # -- one batch ----------------------------------------------------------------------
    def recommend(self, request: RecommendRequest) -> Recommendation:
        return self.recommend_many([request])[0]

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Recommendation]:
        """Answer a batch: the personalized users' vectors in one model call and one index
        query, every list through the rules."""
        fallback = self.config.fallback
        plans = []
        for request in requests:
            history = self.history(request)
            features = {**self.users.get(request.user_id, {}), **request.context}
            warm = request.user_id in self._known and len(history) >= fallback.warm_min
            plans.append((request, history, features, warm))
        warm_rows = [k for k, plan in enumerate(plans) if plan[3]]
        personal = self._personalized([plans[k] for k in warm_rows]) if warm_rows else []
        answers = {k: a for k, a in zip(warm_rows, personal, strict=True) if a is not None}
        out = []
        for k, (request, history, features, _) in enumerate(plans):
            answer = answers.get(k)
            if answer is None:
                answer = self._fallback(request, history, features)
            out.append(answer)
        return out

    def history(self, request: RecommendRequest) -> list[str]:
        """The user's interactions known to this version, then the session's (no repeats)."""
        seen = dict.fromkeys(self.snapshot.history.get(request.user_id, ()))
        seen.update(dict.fromkeys(request.session))
        return list(seen)

    def _seen(self, history: Sequence[str]) -> set[int]:
        return {self._position[i] for i in history if i in self._position}

    def _answer(
        self,
        request: RecommendRequest,
        level: Level,
        scores: NDArray[np.float64],
        candidates: NDArray[np.int64],
        history: Sequence[str],
        confidence: float = 0.0,
    ) -> Recommendation:
        chosen, final = apply_rules(
            scores,
            candidates,
            n=request.n,
            seen=self._seen(history),
            rules=self.config.rules,
            tags=self.snapshot.item_tags,
            freshness=self.freshness,
        )
        return Recommendation(
            request.user_id,
            tuple(self.items[k] for k in chosen),
            tuple(round(s, 6) for s in final),
            level,
            self.version,
            round(confidence, 6),
            len(history),
        )

    # -- the levels ---------------------------------------------------------------------
    def _personalized(
        self, plans: Sequence[tuple[RecommendRequest, list[str], dict[str, Any], bool]]
    ) -> list[Recommendation | None]:
        ids = self.encoding.user_codes([p[0].user_id for p in plans])
        features = self.encoding.user_feature_codes([p[2] for p in plans])
        vectors = self.model.user_vectors(ids, features)
        depth = self.config.fallback.candidates + max(len(p[1]) for p in plans)
        labels, scores = self.index.query(vectors, depth)
        out: list[Recommendation | None] = []
        for row, (request, history, _, _) in enumerate(plans):
            seen = self._seen(history)
            keep = np.array([label not in seen for label in labels[row]])
            candidates = labels[row][keep][: self.config.fallback.candidates]
            retrieval = scores[row][keep][: self.config.fallback.candidates]
            confidence = self._confidence(retrieval, request.n)
            if confidence < self.config.fallback.min_confidence or len(candidates) == 0:
                out.append(None)
                continue
            ranked = retrieval.astype(np.float64)
            if self.ranker is not None:
                user_rating = self.snapshot.user_mean_rating.get(request.user_id)
                rows = self.snapshot.rows(history, user_rating, candidates, retrieval)
                ranked = self.ranker.score(rows)
            out.append(
                self._answer(request, "personalized", ranked, candidates, history, confidence)
            )
        return out

    def _confidence(self, scores: NDArray[Any], n: int) -> float:
        if len(scores) == 0:
            return 0.0
        logits = scores.astype(np.float64) / self.temperature
        weights = np.exp(logits - logits.max())
        return float(weights[:n].sum() / weights.sum())

    def _fallback(
        self, request: RecommendRequest, history: list[str], features: Mapping[str, Any]
    ) -> Recommendation:
        everything = np.arange(len(self.items), dtype=np.int64)
        seen = sorted(self._seen(history))
        popularity = np.log1p(self.popularity.counts)
        if seen:
            profile = self.content[seen].mean(axis=0)
            similarity = self.content @ profile
            top = popularity.max() or 1.0
            scores = similarity + _HYBRID_POPULARITY * popularity / top
            return self._answer(request, "hybrid", scores, everything, history)
        key = cohort_key(features, self.popularity.cohort)
        if self.popularity.support(key) >= self.config.fallback.cohort_min:
            scores = self.popularity.scores(key).astype(np.float64)
            return self._answer(request, "cohort", scores, everything, history)
        return self._answer(
            request, "popular", self.popularity.counts.astype(np.float64), everything, history
        )
