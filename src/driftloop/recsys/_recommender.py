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
from driftloop.recsys._rules import apply_rules_many, ordered, pick
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
        # Memos of what one version always answers the same for a user or a cohort (filled
        # as users come; a new version is a new object, so they never outlive the model):
        self._histories: dict[str, tuple[str, ...]] = {}  # training history, no repeats
        self._seen_of: dict[str, NDArray[np.int64]] = {}  # its item positions
        self._vectors: dict[str, NDArray[np.float32]] = {}  # user tower, stored features
        self._orders: dict[Any, tuple[NDArray[np.float64], NDArray[np.int64]]] = {}
        self._log_popularity = np.log1p(self.popularity.counts)
        self._everything = np.arange(len(self.items), dtype=np.int64)

    # -- one batch ----------------------------------------------------------------------
    def recommend(self, request: RecommendRequest) -> Recommendation:
        return self.recommend_many([request])[0]

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Recommendation]:
        """Answer a batch: the personalized users' vectors in one model call and one index
        query, their candidates' features and ranker scores in one call each, every list
        through the rules."""
        fallback = self.config.fallback
        plans = []
        for request in requests:
            history = self.history(request)
            warm = request.user_id in self._known and len(history) >= fallback.warm_min
            plans.append(_Plan(request, history, self._seen_positions(request, history), warm))
        warm_rows = [k for k, plan in enumerate(plans) if plan.warm]
        personal = self._personalized([plans[k] for k in warm_rows]) if warm_rows else []
        answers = {k: a for k, a in zip(warm_rows, personal, strict=True) if a is not None}
        return [answers.get(k) or self._fallback(plan) for k, plan in enumerate(plans)]

    def history(self, request: RecommendRequest) -> Sequence[str]:
        """The user's interactions known to this version, then the session's (no repeats)."""
        known = self._histories.get(request.user_id)
        if known is None:
            known = tuple(dict.fromkeys(self.snapshot.history.get(request.user_id, ())))
            self._histories[request.user_id] = known
        if not request.session:
            return known
        seen = dict.fromkeys(known)
        seen.update(dict.fromkeys(request.session))
        return tuple(seen)

    def _seen_positions(
        self, request: RecommendRequest, history: Sequence[str]
    ) -> NDArray[np.int64]:
        if request.session:
            return self.snapshot.positions(history)
        seen = self._seen_of.get(request.user_id)
        if seen is None:
            seen = self._seen_of[request.user_id] = self.snapshot.positions(history)
        return seen

    def _user_vectors(self, plans: Sequence[_Plan]) -> NDArray[np.float32]:
        """The user tower's vectors; a user answered with its stored features is computed
        once per version, a request whose context gives features every time."""
        features = self.encoding.user_features
        fresh = [
            k
            for k, p in enumerate(plans)
            if p.request.user_id not in self._vectors or features_in(p.request, features)
        ]
        if fresh:
            asked = [plans[k].request for k in fresh]
            computed = self.model.user_vectors(
                self.encoding.user_codes([r.user_id for r in asked]),
                self.encoding.user_feature_codes(
                    [{**self.users.get(r.user_id, {}), **r.context} for r in asked]
                ),
            )
            for request, vector in zip(asked, computed, strict=True):
                if not features_in(request, features):
                    self._vectors[request.user_id] = vector
            if len(fresh) == len(plans):
                return computed
            by_row = dict(zip(fresh, computed, strict=True))
            return np.stack(
                [
                    by_row[k] if k in by_row else self._vectors[p.request.user_id]
                    for k, p in enumerate(plans)
                ]
            )
        return np.stack([self._vectors[p.request.user_id] for p in plans])

    def _answer(
        self,
        plan: _Plan,
        level: Level,
        chosen: list[int],
        final: list[float],
        confidence: float = 0.0,
    ) -> Recommendation:
        return Recommendation(
            plan.request.user_id,
            tuple(self.items[k] for k in chosen),
            tuple(round(s, 6) for s in final),
            level,
            self.version,
            round(confidence, 6),
            len(plan.history),
        )

    # -- the levels ---------------------------------------------------------------------
    def _personalized(self, plans: Sequence[_Plan]) -> list[Recommendation | None]:
        """One index query, one feature matrix and one ranker call for the batch; seen
        items, candidate limits and confidences are masks over the retrieved matrix."""
        vectors = self._user_vectors(plans)
        # Seen items are filtered after the query: look past as many of them as there are
        # candidates at most (a user with a long history gets fewer candidates, not a
        # query of the whole catalog).
        limit = self.config.fallback.candidates
        size = len(self.items)
        depth = min(size, limit + min(max(len(p.seen) for p in plans), limit))
        labels, scores = self.index.query(vectors, depth)
        rows = len(plans)
        owned = np.concatenate(
            [np.zeros(0, dtype=np.int64)] + [p.seen + k * size for k, p in enumerate(plans)]
        )
        keep = ~np.isin(labels + np.arange(rows)[:, None] * size, owned)
        rank = np.cumsum(keep, axis=1) - 1
        keep &= rank < limit
        # Confidence: the top n's share of the retrieval softmax over the candidates kept.
        logits = np.where(keep, scores.astype(np.float64) / self.temperature, -np.inf)
        top = np.where(keep, logits, -np.inf).max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            weights = np.where(keep, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
        ns = np.array([p.request.n for p in plans])
        head = (weights * (rank < ns[:, None])).sum(axis=1)
        total = weights.sum(axis=1)
        confidence = np.where(total > 0, head / np.where(total > 0, total, 1.0), 0.0)
        chosen = (keep.any(axis=1)) & (confidence >= self.config.fallback.min_confidence)
        keep &= chosen[:, None]
        owner, column = np.nonzero(keep)  # row-major: each user's candidates in rank order
        candidates = labels[owner, column]
        retrieval = scores[owner, column].astype(np.float64)
        ranks = rank[owner, column]
        ranked = retrieval
        if self.ranker is not None and len(owner):  # one ranker call for the batch
            features = self.snapshot.rows_many(
                [p.seen for p in plans],
                [len(p.history) for p in plans],
                [self.snapshot.user_mean_rating.get(p.request.user_id) for p in plans],
                owner,
                candidates,
                retrieval,
                ranks,
            )
            ranked = self.ranker.score(features)
        # One padded row per chosen user (candidates in rank order), through the rules.
        picked = [int(k) for k in np.flatnonzero(chosen)]
        slot = np.full(rows, -1)
        slot[picked] = np.arange(len(picked))
        width = max(int(keep.sum(axis=1).max(initial=0)), 1)
        matrix = np.full((len(picked), width), -np.inf)
        items = np.zeros((len(picked), width), dtype=np.int64)
        matrix[slot[owner], ranks] = ranked
        items[slot[owner], ranks] = candidates
        lists = apply_rules_many(
            matrix,
            items,
            ns=[plans[k].request.n for k in picked],
            rules=self.config.rules,
            tags=self.snapshot.item_tags,
            freshness=self.freshness,
        )  # seen items are not among the candidates: excluded above
        out: list[Recommendation | None] = [None] * rows
        for k, (items_chosen, final) in zip(picked, lists, strict=True):
            out[k] = self._answer(
                plans[k], "personalized", items_chosen, final, float(confidence[k])
            )
        return out

    def _fallback(self, plan: _Plan) -> Recommendation:
        rules = self.config.rules
        n = plan.request.n
        if len(plan.seen):
            profile = self.content[np.sort(plan.seen)].mean(axis=0)
            similarity = self.content @ profile
            top = self._log_popularity.max() or 1.0
            scores = similarity + _HYBRID_POPULARITY * self._log_popularity / top
            mask = np.zeros((1, len(self.items)), dtype=bool)
            mask[0, plan.seen] = True
            ((chosen, final),) = apply_rules_many(
                scores[None, :],
                self._everything[None, :],
                ns=[n],
                rules=rules,
                tags=self.snapshot.item_tags,
                freshness=self.freshness,
                seen=mask,
            )
            return self._answer(plan, "hybrid", chosen, final)
        features = {**self.users.get(plan.request.user_id, {}), **plan.request.context}
        key = cohort_key(features, self.popularity.cohort)
        level: Level = "popular"
        if self.popularity.support(key) >= self.config.fallback.cohort_min:
            level = "cohort"
        else:
            key = None
        # Nothing seen: the list depends on the cohort and the rules only, so its order
        # is computed once per version.
        memo = (key, rules)
        if memo not in self._orders:
            scores = self.popularity.scores(key).astype(np.float64)
            self._orders[memo] = ordered(
                scores[None, :], self._everything[None, :], rules=rules, freshness=self.freshness
            )
        scored, order = self._orders[memo]
        chosen = pick(
            scored[0],
            n=n,
            tags=self.snapshot.item_tags,
            max_per_tag=rules.max_per_genre,
            candidates=self._everything,
            order=order[0],
        )
        return self._answer(plan, level, chosen, scored[0, chosen].tolist())


@dataclass(frozen=True)
class _Plan:
    """One request of a batch with what the version knows of its user."""

    request: RecommendRequest
    history: Sequence[str]  # training interactions, then the session's
    seen: NDArray[np.int64]  # item positions of the history
    warm: bool  # known to the model, with enough interactions for the personalized level


def features_in(request: RecommendRequest, features: Sequence[str]) -> bool:
    """Whether the request's context gives any of the user ``features``."""
    return any(f in request.context for f in features)
