"""Training a recommender from interactions and a catalog.

1. The two-tower model is fitted on the interactions before a ranker cutoff (the last
   ``ranker_fraction`` of the time is the ranker's label window); its retrieved
   candidates for the window's users, with point-in-time features at the window's start,
   are the ranker's training rows (label: the user interacted with the item in the
   window).
2. The two-tower model is fitted again on every interaction (same seed) for serving, and
   every catalog item, those never interacted with included (by their content), goes
   into the index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.config import RecsysConfig
from driftloop.recsys._catalog import Catalog, Encoding, check_interactions, item_content
from driftloop.recsys._features import Snapshot
from driftloop.recsys._index import ItemIndex
from driftloop.recsys._popularity import Popularity
from driftloop.recsys._ranker import Ranker
from driftloop.recsys._recommender import Recommender
from driftloop.recsys._two_tower import TowerConfig, TwoTower, train_two_tower

__all__ = ["TrainConfig", "train_recommender"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the towers, the ranker's label window (0: no ranker), and the
    ``[recsys]`` settings the version keeps (its item index's among them)."""

    tower: TowerConfig = field(default_factory=TowerConfig)
    ranker_fraction: float = 0.15
    ranker_candidates: int = 100
    ranker_rounds: int = 150
    ranker_learning_rate: float = 0.05
    ranker_leaves: int = 31  # fewer rounds and leaves: cheaper answers (docs/recsys.md)
    recsys: RecsysConfig = field(default_factory=RecsysConfig)


def _pairs(
    frame: pd.DataFrame,
    encoding: Encoding,
    user_rows: Mapping[str, Mapping[str, Any]],
    catalog: Catalog,
) -> dict[str, NDArray[np.int64]]:
    users = frame["user_id"].tolist()
    items = frame["item_id"].tolist()
    content = item_content(catalog, encoding, items)
    return {
        "user": encoding.user_codes(users),
        "user_features": encoding.user_feature_codes([user_rows.get(u, {}) for u in users]),
        "item": encoding.item_codes(items),
        "tags": content["tags"],
        "years": content["years"],
    }


def _item_vectors(
    model: TwoTower, encoding: Encoding, catalog: Catalog, items: tuple[str, ...]
) -> NDArray[Any]:
    content = item_content(catalog, encoding, items)
    return model.item_vectors(encoding.item_codes(items), content["tags"], content["years"])


def _fit_towers(
    frame: pd.DataFrame,
    catalog: Catalog,
    user_rows: Mapping[str, Mapping[str, Any]],
    config: TowerConfig,
) -> tuple[Encoding, TwoTower]:
    encoding = Encoding.fit(frame, catalog)
    model = train_two_tower(encoding.sizes, _pairs(frame, encoding, user_rows, catalog), config)
    return encoding, model


def _fit_ranker(
    frame: pd.DataFrame,
    catalog: Catalog,
    user_rows: Mapping[str, Mapping[str, Any]],
    items: tuple[str, ...],
    config: TrainConfig,
    tags: Mapping[str, Any],
    years: Mapping[str, float],
) -> Ranker | None:
    at = frame["timestamp"].iloc[int(len(frame) * (1.0 - config.ranker_fraction))]
    before = frame[frame["timestamp"] < at]
    window = frame[frame["timestamp"] >= at]
    encoding, model = _fit_towers(before, catalog, user_rows, config.tower)
    snapshot = Snapshot.at_time(before, at, items, tags, years)
    index = ItemIndex.build(_item_vectors(model, encoding, catalog, items), config.recsys.index)
    targets = window.groupby("user_id")["item_id"].agg(set)
    users = [u for u in targets.index if u in snapshot.history]
    if len(users) < 10:
        return None
    vectors = model.user_vectors(
        encoding.user_codes(users),
        encoding.user_feature_codes([user_rows.get(u, {}) for u in users]),
    )
    depth = config.ranker_candidates + max(len(snapshot.history[u]) for u in users)
    labels, scores = index.query(vectors, depth)
    rows, answers, groups = [], [], []
    position = {item: k for k, item in enumerate(items)}
    for r, user in enumerate(users):
        history = snapshot.history[user]
        seen = {position[i] for i in history if i in position}
        keep = np.array([label not in seen for label in labels[r]])
        candidates = labels[r][keep][: config.ranker_candidates]
        relevant = targets[user]
        hits = np.array([items[c] in relevant for c in candidates], dtype=np.float64)
        if hits.sum() == 0:
            continue
        rating = snapshot.user_mean_rating.get(user)
        rows.append(snapshot.rows(history, rating, candidates, scores[r][keep][: len(candidates)]))
        answers.append(hits)
        groups.append(len(candidates))
    if len(groups) < 10:
        return None
    return Ranker.fit(
        np.vstack(rows),
        np.concatenate(answers),
        groups,
        seed=config.tower.seed,
        rounds=config.ranker_rounds,
        learning_rate=config.ranker_learning_rate,
        leaves=config.ranker_leaves,
    )


def train_recommender(
    interactions: pd.DataFrame,
    catalog: Catalog,
    *,
    name: str = "recommender",
    config: TrainConfig = TrainConfig(),
    progress: Callable[[str], None] | None = None,
) -> Recommender:
    """Train every piece of a recommender on ``interactions`` (all before the time it is
    trained at: the caller splits by time) over the items of ``catalog``."""
    say = progress or (lambda step: None)
    frame = check_interactions(interactions)
    items = tuple(catalog.items["item_id"].astype(str))
    user_rows = {
        str(row["user_id"]): {f: str(row[f]) for f in catalog.user_features}
        for row in catalog.users.to_dict("records")
    }
    tags = {str(i): tuple(t) for i, t in zip(items, catalog.items[catalog.item_tags], strict=True)}
    years: dict[str, float] = {}
    if catalog.item_year is not None:
        years = {
            str(i): float(y)
            for i, y in zip(items, catalog.items[catalog.item_year], strict=True)
            if pd.notna(y)
        }
    ranker = None
    if config.ranker_fraction > 0:
        say("ranker")
        ranker = _fit_ranker(frame, catalog, user_rows, items, config, tags, years)
    say("towers")
    encoding, model = _fit_towers(frame, catalog, user_rows, config.tower)
    say("index")
    index = ItemIndex.build(_item_vectors(model, encoding, catalog, items), config.recsys.index)
    at = frame["timestamp"].max() + pd.Timedelta(microseconds=1)
    snapshot = Snapshot.at_time(frame, at, items, tags, years)
    popularity = Popularity.fit(frame, items, catalog.users.astype(str), catalog.cohort)
    return Recommender(
        name=name,
        version="local",
        encoding=encoding,
        items=items,
        model=model,
        index=index,
        ranker=ranker,
        popularity=popularity,
        snapshot=snapshot,
        users=user_rows,
        content=content_matrix(encoding, [tags.get(i, ()) for i in items]),
        freshness=freshness_of(snapshot.item_year),
        config=config.recsys,
        temperature=config.tower.temperature,
    )


def content_matrix(encoding: Encoding, tags: list[tuple[str, ...]]) -> NDArray[np.float32]:
    """Items x tags, each row of unit length (an item without tags: zeros)."""
    codes = encoding.tag_codes(tags)
    out = np.zeros((len(tags), len(encoding.tags) + 1), dtype=np.float32)
    for i, row in enumerate(codes):
        out[i, row[row > 0]] = 1.0
    out[:, 0] = 0.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    unit: NDArray[np.float32] = out / np.maximum(norms, 1e-9)
    return unit


def freshness_of(years: NDArray[np.float64]) -> NDArray[np.float64]:
    """0 for the oldest item .. 1 for the newest (items without a year: 0)."""
    finite = np.isfinite(years)
    if not finite.any():
        return np.zeros(len(years))
    low, high = years[finite].min(), years[finite].max()
    out = np.zeros(len(years))
    out[finite] = (years[finite] - low) / (high - low) if high > low else 1.0
    return out
