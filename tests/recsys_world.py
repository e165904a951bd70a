"""A small, seeded recommendation world for fast tests: users in demographic cohorts who
each prefer one genre, items with genres and years, interactions over 60 days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from driftloop.core.config import IndexConfig, RecsysConfig
from driftloop.recsys import (
    Catalog,
    Recommendation,
    Recommender,
    RecommendRequest,
    TowerConfig,
    TrainConfig,
)

GENRES = ("action", "comedy", "drama", "horror", "romance")
START = pd.Timestamp("2024-01-01", tz="UTC")
FAST = TrainConfig(
    tower=TowerConfig(dim=16, epochs=3, batch_size=128, seed=0),
    ranker_fraction=0.2,
    ranker_candidates=30,
    ranker_rounds=20,
    recsys=RecsysConfig(index=IndexConfig(m=16, ef_construction=64, ef=64)),
)


def world(
    users: int = 80, items: int = 60, per_user: int = 20, seed: int = 0
) -> tuple[pd.DataFrame, Catalog]:
    """Interactions and their catalog; user ``u<k>`` prefers genre ``k % 5``."""
    rng = np.random.default_rng(seed)
    item_ids = [f"i{j}" for j in range(items)]
    item_genres = [
        (GENRES[j % 5],) if j % 7 else (GENRES[j % 5], GENRES[(j + 1) % 5]) for j in range(items)
    ]
    item_frame = pd.DataFrame(
        {"item_id": item_ids, "genres": item_genres, "year": 1990 + (np.arange(items) % 30)}
    )
    user_ids = [f"u{k}" for k in range(users)]
    user_frame = pd.DataFrame(
        {
            "user_id": user_ids,
            "gender": ["F" if k % 2 else "M" for k in range(users)],
            "age_group": [("18-24", "25-34", "35-44")[k % 3] for k in range(users)],
        }
    )
    rows = []
    for k, user in enumerate(user_ids):
        liked = [j for j in range(items) if GENRES[k % 5] in item_genres[j]]
        chosen = rng.choice(liked, size=min(per_user, len(liked)), replace=False)
        extra = rng.choice(items, size=per_user // 4, replace=False)
        for j in [*chosen, *extra]:
            day = rng.uniform(0, 60)
            rows.append(
                (user, item_ids[int(j)], float(rng.integers(3, 6)), START + pd.Timedelta(days=day))
            )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    frame = frame.drop_duplicates(["user_id", "item_id"]).sort_values("timestamp")
    catalog = Catalog(
        user_frame, item_frame, ("gender", "age_group"), "genres", "year", ("gender", "age_group")
    )
    return frame.reset_index(drop=True), catalog


@dataclass
class BrokenRecommender(Recommender):
    """A version that raises on every call (a bad index, say)."""

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Recommendation]:
        raise RuntimeError("this version's index is broken")


def broken(rec: Recommender, version: str) -> Recommender:
    """``rec`` as ``version``, raising on every call."""
    values = {f.name: getattr(rec, f.name) for f in fields(rec)}
    return BrokenRecommender(**{**values, "version": version})
