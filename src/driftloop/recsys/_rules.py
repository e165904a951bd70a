"""Business rules on a level's scores: exclude seen items, freshness boost, at most k
items per genre in the top n.

The rules run on a whole batch at once: one row of candidate scores per answer (rows
padded with ``-inf``), normalised, boosted and ordered with NumPy; only the per-genre
limit walks a row in Python, and only as far as the list needs.

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

__all__ = ["apply_rules", "apply_rules_many", "ordered", "pick"]


def _normalised(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each row scaled to 0..1 over its finite scores (all 1 when they are equal); the
    others ``-inf``. A row with no finite score is returned as it is."""
    finite = np.isfinite(scores)
    low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    span = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 1.0)
    out = np.where(finite, scaled, -np.inf)
    empty = ~finite.any(axis=1)
    out[empty] = scores[empty]
    return out


def pick(
    scores: NDArray[np.float64],
    *,
    n: int,
    tags: Sequence[frozenset[str]],
    max_per_tag: int,
    candidates: NDArray[np.int64] | None = None,
    order: NDArray[np.int64] | None = None,
) -> list[int]:
    """Positions (into ``scores``) of the best ``n``, greedily skipping an item that would
    put more than ``max_per_tag`` items of one tag in the list (0: no limit). ``tags`` are
    per candidate position when ``candidates`` is None, else per item of ``candidates``.
    ``order`` is ``scores``' stable descending order when the caller has it already."""
    if order is None:
        order = np.argsort(-scores, kind="stable")
    if not max_per_tag:  # no walk: the first n finite scores
        top = order[:n]
        return [int(j) for j in top[np.isfinite(scores[top])]]
    chosen: list[int] = []
    held: dict[str, int] = {}
    for j in order:
        if len(chosen) == n or not np.isfinite(scores[j]):
            break
        item_tags = tags[int(candidates[j]) if candidates is not None else int(j)]
        if any(held.get(t, 0) >= max_per_tag for t in item_tags):
            continue
        chosen.append(int(j))
        for t in item_tags:
            held[t] = held.get(t, 0) + 1
    return chosen


def ordered(
    scores: NDArray[np.float64],
    candidates: NDArray[np.int64],
    *,
    rules: RecsysRules,
    freshness: NDArray[np.float64],
    seen: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The final scores of :func:`apply_rules_many` and each row's stable descending
    order of them (what :func:`pick` walks)."""
    final = _normalised(scores.astype(np.float64))
    if rules.exclude_seen and seen is not None:
        final[seen] = -np.inf
    if rules.freshness_boost:
        final = final + rules.freshness_boost * freshness[candidates]
    return final, np.argsort(-final, axis=1, kind="stable")


def apply_rules_many(
    scores: NDArray[np.float64],
    candidates: NDArray[np.int64],
    *,
    ns: Sequence[int],
    rules: RecsysRules,
    tags: Sequence[frozenset[str]],
    freshness: NDArray[np.float64],
    seen: NDArray[np.bool_] | None = None,
) -> list[tuple[list[int], list[float]]]:
    """Per row: the chosen item positions and their final scores. ``scores`` and
    ``candidates`` (item positions) are one row per answer, padded with ``-inf`` scores;
    ``seen`` marks the candidates the user interacted with (excluded when the rules say
    so); ``freshness`` is per item (0 oldest, 1 newest); ``ns`` the list lengths."""
    final, order = ordered(scores, candidates, rules=rules, freshness=freshness, seen=seen)
    if not rules.max_per_genre:
        return _first_finite(final, candidates, order, ns)
    out = []
    for row, n in enumerate(ns):
        chosen = pick(
            final[row],
            n=n,
            tags=tags,
            max_per_tag=rules.max_per_genre,
            candidates=candidates[row],
            order=order[row],
        )
        out.append(([int(candidates[row, j]) for j in chosen], final[row, chosen].tolist()))
    return out


def _first_finite(
    final: NDArray[np.float64],
    candidates: NDArray[np.int64],
    order: NDArray[np.int64],
    ns: Sequence[int],
) -> list[tuple[list[int], list[float]]]:
    """What :func:`pick` chooses without a per-genre limit (each row's first ``n`` finite
    scores in ``order``), for every row with one gather and one conversion to Python."""
    top = order[:, : max(ns, default=0)]
    scores = np.take_along_axis(final, top, axis=1)
    items = np.take_along_axis(candidates, top, axis=1).tolist()
    finite = np.isfinite(scores).tolist()
    values = scores.tolist()
    out = []
    for row, n in enumerate(ns):
        keep = finite[row][:n]
        out.append(
            (
                [item for item, ok in zip(items[row][:n], keep, strict=True) if ok],
                [value for value, ok in zip(values[row][:n], keep, strict=True) if ok],
            )
        )
    return out


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
    """The chosen item positions and their final scores for one answer: ``scores`` are
    per candidate (item positions ``candidates``), ``seen`` the user's item positions."""
    mask = np.isin(candidates, list(seen))[None, :] if seen else None
    return apply_rules_many(
        scores[None, :],
        candidates[None, :],
        ns=[n],
        rules=rules,
        tags=tags,
        freshness=freshness,
        seen=mask,
    )[0]
