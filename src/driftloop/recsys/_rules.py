"""Business rules on a level's scores: exclude seen items, freshness boost, at most k
items per genre in the top n.

>>> import numpy as np
>>> tags = (frozenset({"a"}), frozenset({"a"}), frozenset({"b"}))
>>> pick(np.array([3.0, 2.0, 1.0]), n=2, tags=tags, max_per_tag=1)
[0, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from driftloop.core.config import RecsysRules

__all__ = ["apply_rules", "pick"]


def _normalised(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    finite = np.isfinite(scores)
    if not finite.any():
        return scores
    low, high = scores[finite].min(), scores[finite].max()
    out = np.full_like(scores, -np.inf)
    out[finite] = (scores[finite] - low) / (high - low) if high > low else 1.0
    return out


def pick(
    scores: NDArray[np.float64],
    *,
    n: int,
    tags: Sequence[frozenset[str]],
    max_per_tag: int,
    candidates: NDArray[np.int64] | None = None,
) -> list[int]:
    """Positions (into ``scores``) of the best ``n``, greedily skipping an item that would
    put more than ``max_per_tag`` items of one tag in the list (0: no limit). ``tags`` are
    per candidate position when ``candidates`` is None, else per item of ``candidates``."""
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    held: dict[str, int] = {}
    for j in order:
        if len(chosen) == n or not np.isfinite(scores[j]):
            break
        item_tags = tags[int(candidates[j]) if candidates is not None else int(j)]
        if max_per_tag and any(held.get(t, 0) >= max_per_tag for t in item_tags):
            continue
        chosen.append(int(j))
        for t in item_tags:
            held[t] = held.get(t, 0) + 1
    return chosen


def apply_rules(
    scores: NDArray[np.float64],
    candidates: NDArray[np.int64],
    *,
    n: int,
    seen: set[int],
    rules: RecsysRules,
    tags: Sequence[frozenset[str]],
    freshness: NDArray[np.float64],
) -> tuple[list[int], list[float]]:
    """The chosen item positions and their final scores. ``scores`` are per candidate
    (item positions ``candidates``); ``freshness`` per item (0 oldest, 1 newest)."""
    final = _normalised(scores.astype(np.float64))
    if rules.exclude_seen and seen:
        final[np.isin(candidates, list(seen))] = -np.inf
    if rules.freshness_boost:
        final = final + rules.freshness_boost * freshness[candidates]
    chosen = pick(final, n=n, tags=tags, max_per_tag=rules.max_per_genre, candidates=candidates)
    return [int(candidates[j]) for j in chosen], [float(final[j]) for j in chosen]
