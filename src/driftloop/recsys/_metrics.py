"""Offline ranking metrics: Recall@k, NDCG@k, MAP@k, and of the lists as a whole,
coverage, diversity and novelty.

>>> round(ndcg_at_k(["a", "b", "c"], {"b"}, 3), 4), recall_at_k(["a", "b"], {"b", "z"}, 2)
(0.6309, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "coverage",
    "diversity",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "recall_at_k",
    "summarize",
]


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / min(len(relevant), k)


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    gain = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return gain / ideal


def map_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, item in enumerate(ranked[:k]):
        if item in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(relevant), k)


def coverage(lists: Sequence[Sequence[str]], catalog_size: int) -> float:
    """Share of the catalog that appears in at least one list."""
    if catalog_size <= 0:
        return 0.0
    return len({item for ranked in lists for item in ranked}) / catalog_size


def diversity(lists: Sequence[Sequence[str]], tags: Mapping[str, Sequence[str]]) -> float:
    """Mean intra-list dissimilarity: 1 - Jaccard similarity of the items' tags, over the
    pairs of each list, averaged over lists."""
    out = []
    for ranked in lists:
        sets = [set(tags.get(i, ())) for i in ranked]
        pairs = [
            1.0 - len(a & b) / len(a | b) if a | b else 0.0
            for n, a in enumerate(sets)
            for b in sets[n + 1 :]
        ]
        if pairs:
            out.append(float(np.mean(pairs)))
    return float(np.mean(out)) if out else 0.0


def novelty(lists: Sequence[Sequence[str]], popularity: Mapping[str, float]) -> float:
    """Mean self-information of the recommended items, -log2 of their share of
    interactions (items never seen count as seen once)."""
    total = sum(popularity.values()) or 1.0
    values = [
        -math.log2(max(popularity.get(i, 0.0), 1.0) / total) for ranked in lists for i in ranked
    ]
    return float(np.mean(values)) if values else 0.0


def summarize(
    lists: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    k: int,
    *,
    catalog_size: int,
    tags: Mapping[str, Sequence[str]],
    popularity: Mapping[str, float],
) -> dict[str, float]:
    """Every metric over the users of ``relevant`` (mean over users for the ranking ones)."""
    users = [u for u in relevant if relevant[u]]
    ranked = [list(lists.get(u, ()))[:k] for u in users]
    pairs = list(zip(ranked, users, strict=True))

    def mean(metric: Callable[[Sequence[str], set[str], int], float]) -> float:
        return float(np.mean([metric(r, relevant[u], k) for r, u in pairs])) if pairs else 0.0

    return {
        "users": float(len(users)),
        f"recall@{k}": mean(recall_at_k),
        f"ndcg@{k}": mean(ndcg_at_k),
        f"map@{k}": mean(map_at_k),
        "coverage": coverage(ranked, catalog_size),
        "diversity": diversity(ranked, tags),
        "novelty": novelty(ranked, popularity),
    }
