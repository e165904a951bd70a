"""Point-in-time features for ranking: what was known about a user, an item and the pair
at a moment, computed only from interactions strictly before it.

:class:`Snapshot` is the state at ``at``: per-user and per-item aggregates and each user's
history. The ranker's training rows are built from a snapshot at the start of their label
window, and serving uses the snapshot at the model's training cutoff, so training and
serving read features the same way and no row ever sees its own future.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["RANKING_FEATURES", "Snapshot"]

RANKING_FEATURES = (
    "retrieval_score",
    "retrieval_rank",
    "user_count",
    "user_mean_rating",
    "item_count",
    "item_recent_count",
    "item_mean_rating",
    "item_year",
    "tag_affinity",
    "year_gap",
)
_RECENT = pd.Timedelta(days=30)


@dataclass(frozen=True)
class Snapshot:
    """Aggregates at ``at`` over interactions before it; arrays in ``items`` order."""

    at: pd.Timestamp
    items: tuple[str, ...]
    item_count: NDArray[np.float64]
    item_recent_count: NDArray[np.float64]
    item_mean_rating: NDArray[np.float64]
    item_year: NDArray[np.float64]
    item_tags: tuple[frozenset[str], ...]
    history: Mapping[str, tuple[str, ...]]
    user_mean_rating: Mapping[str, float]

    def __post_init__(self) -> None:
        position = {item: j for j, item in enumerate(self.items)}
        names = sorted({t for tags in self.item_tags for t in tags})
        column = {t: k for k, t in enumerate(names)}
        matrix = np.zeros((len(self.items), max(len(names), 1)), dtype=np.float64)
        for j, tags in enumerate(self.item_tags):
            for t in tags:
                matrix[j, column[t]] = 1.0
        object.__setattr__(self, "_position", position)
        object.__setattr__(self, "_tags", matrix)  # items x tags, 0/1

    @classmethod
    def at_time(
        cls,
        interactions: pd.DataFrame,
        at: pd.Timestamp,
        items: tuple[str, ...],
        tags: Mapping[str, Sequence[str]],
        years: Mapping[str, float],
    ) -> Snapshot:
        past = interactions[interactions["timestamp"] < at]
        index = pd.Index(items)
        codes = index.get_indexer(pd.Index(past["item_id"]))
        known = codes >= 0
        count = np.bincount(codes[known], minlength=len(items)).astype(np.float64)
        recent = (past["timestamp"] >= at - _RECENT).to_numpy()
        recent_count = np.bincount(codes[known & recent], minlength=len(items)).astype(np.float64)
        if "rating" in past.columns:
            sums = np.bincount(
                codes[known], weights=past["rating"].to_numpy()[known], minlength=len(items)
            )
            mean = np.where(count > 0, sums / np.maximum(count, 1), np.nan)
            user_mean = past.groupby("user_id")["rating"].mean().to_dict()
        else:
            mean = np.full(len(items), np.nan)
            user_mean = {}
        history = {str(u): tuple(g) for u, g in past.groupby("user_id", sort=False)["item_id"]}
        return cls(
            at=at,
            items=items,
            item_count=count,
            item_recent_count=recent_count,
            item_mean_rating=mean,
            item_year=np.array([years.get(i, np.nan) for i in items], dtype=np.float64),
            item_tags=tuple(frozenset(tags.get(i, ())) for i in items),
            history=history,
            user_mean_rating={str(k): float(v) for k, v in user_mean.items()},
        )

    def positions(self, history: Sequence[str]) -> NDArray[np.int64]:
        """The item positions of ``history`` (items this snapshot does not know skipped)."""
        position: dict[str, int] = self._position  # type: ignore[attr-defined]
        return np.array([position[i] for i in history if i in position], dtype=np.int64)

    def rows(
        self,
        history: Sequence[str],
        user_rating: float | None,
        candidates: NDArray[np.int64],
        scores: NDArray[Any],
    ) -> NDArray[np.float64]:
        """The ranking features of ``candidates`` (item positions, in retrieval order with
        their ``scores``) for a user with ``history``; columns :data:`RANKING_FEATURES`."""
        k = len(candidates)
        return self.rows_many(
            [self.positions(history)],
            [len(history)],
            [user_rating],
            np.zeros(k, dtype=np.int64),
            candidates,
            scores,
            np.arange(k),
        )

    def rows_many(
        self,
        seen: Sequence[NDArray[np.int64]],
        history_sizes: Sequence[int],
        user_ratings: Sequence[float | None],
        owner: NDArray[np.int64],
        candidates: NDArray[np.int64],
        scores: NDArray[Any],
        ranks: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """:meth:`rows` for a batch of users at once: user ``u`` has seen the items
        ``seen[u]`` among its ``history_sizes[u]`` interactions; candidate ``j`` is for user
        ``owner[j]``, at retrieval rank ``ranks[j]`` with ``scores[j]``. No Python loop
        over candidates: per-user sums are segment sums over the users' items."""
        tag_matrix: NDArray[np.float64] = self._tags  # type: ignore[attr-defined]
        users = len(seen)
        sizes = np.array([len(s) for s in seen], dtype=np.int64)
        flat = np.concatenate([*seen, np.zeros(0, dtype=np.int64)])
        # Per-user sums, each over its own items only (a user's features do not depend on
        # the batch it came in): the tags of the items seen, their years and how many.
        profile = np.zeros((users, tag_matrix.shape[1]))  # users x tags
        filled = sizes > 0
        if filled.any():  # reduceat gives a row, not zeros, for an empty segment
            starts = (np.cumsum(sizes) - sizes)[filled]
            profile[filled] = np.add.reduceat(tag_matrix[flat], starts, axis=0)
        who = np.repeat(np.arange(users), sizes)
        years = self.item_year[flat]
        finite = np.isfinite(years)
        counted = np.bincount(who, weights=finite, minlength=users)
        year_sums = np.bincount(who, weights=np.where(finite, years, 0.0), minlength=users)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_year = np.where(counted > 0, year_sums / counted, np.nan)
        ratings = np.array([np.nan if r is None else r for r in user_ratings], dtype=np.float64)
        out = np.empty((len(candidates), len(RANKING_FEATURES)), dtype=np.float64)
        out[:, 0] = scores
        out[:, 1] = ranks
        out[:, 2] = np.asarray(history_sizes, dtype=np.float64)[owner]
        out[:, 3] = ratings[owner]
        out[:, 4] = self.item_count[candidates]
        out[:, 5] = self.item_recent_count[candidates]
        out[:, 6] = self.item_mean_rating[candidates]
        out[:, 7] = self.item_year[candidates]
        affinity = np.einsum("ij,ij->i", tag_matrix[candidates], profile[owner])
        out[:, 8] = affinity / np.maximum(sizes, 1)[owner]
        out[:, 9] = out[:, 7] - mean_year[owner]
        return out
