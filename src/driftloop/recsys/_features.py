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
        out = np.empty((k, len(RANKING_FEATURES)), dtype=np.float64)
        position = {item: j for j, item in enumerate(self.items)}
        seen = [position[i] for i in history if i in position]
        tag_counts: dict[str, int] = {}
        for j in seen:
            for tag in self.item_tags[j]:
                tag_counts[tag] = tag_counts.get(tag, 0) + 1
        seen_years = self.item_year[seen] if seen else np.array([])
        mean_year = float(np.nanmean(seen_years)) if np.isfinite(seen_years).any() else np.nan
        out[:, 0] = scores
        out[:, 1] = np.arange(k)
        out[:, 2] = len(history)
        out[:, 3] = np.nan if user_rating is None else user_rating
        out[:, 4] = self.item_count[candidates]
        out[:, 5] = self.item_recent_count[candidates]
        out[:, 6] = self.item_mean_rating[candidates]
        out[:, 7] = self.item_year[candidates]
        total = max(len(seen), 1)
        out[:, 8] = [
            sum(tag_counts.get(t, 0) for t in self.item_tags[c]) / total for c in candidates
        ]
        out[:, 9] = self.item_year[candidates] - mean_year
        return out
