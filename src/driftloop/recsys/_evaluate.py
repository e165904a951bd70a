"""Offline evaluation on a time-based split, by segment: warm users, cold users (at most
``cold_max`` training interactions) and cold items (never interacted with in training)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from driftloop.recsys._metrics import summarize
from driftloop.recsys._split import Split

__all__ = ["Segments", "evaluate_lists", "segments"]

Segments = dict[str, dict[str, set[str]]]


def segments(split: Split, *, cold_max: int = 5) -> Segments:
    """Users' test items by segment. ``warm``/``cold``: users with more than / at most
    ``cold_max`` training interactions, all their test items; ``cold_items``: users'
    test items that no one interacted with in training (users who have some)."""
    counts = split.train["user_id"].value_counts()
    seen_items = set(split.train["item_id"])
    relevant = split.test.groupby("user_id")["item_id"].agg(set)
    out: Segments = {"warm": {}, "cold": {}, "cold_items": {}}
    for user, items in relevant.items():
        key = "warm" if counts.get(user, 0) > cold_max else "cold"
        out[key][str(user)] = set(items)
        new = {i for i in items if i not in seen_items}
        if new:
            out["cold_items"][str(user)] = new
    return out


def evaluate_lists(
    recommend: Callable[[Sequence[str], int], Mapping[str, Sequence[str]]],
    split: Split,
    segs: Segments,
    *,
    k: int = 10,
    catalog_size: int,
    tags: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, float]]:
    """Every metric per segment for ``recommend(users, k) -> lists``."""
    counts = split.train["item_id"].value_counts()
    popularity = {str(i): float(c) for i, c in counts.items()}
    out: dict[str, dict[str, float]] = {}
    for name, relevant in segs.items():
        users = sorted(relevant)
        lists = recommend(users, k) if users else {}
        out[name] = summarize(
            lists, relevant, k, catalog_size=catalog_size, tags=tags, popularity=popularity
        )
    return out


def frame_of(results: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(results).T
