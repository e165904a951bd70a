from __future__ import annotations

import numpy as np

from driftloop.core.config import RecsysRules
from driftloop.recsys._rules import apply_rules_many, ordered, pick


def test_lists_without_a_genre_cap_are_each_rows_best_finite_scores_in_order() -> None:
    # The batch path (one gather for all rows) must choose what the per-row walk chooses:
    # rows padded with -inf, ties, rows shorter than n, an empty row.
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=(40, 25)), 1)  # rounding makes ties
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[3] = -np.inf
    candidates = rng.integers(0, 500, size=scores.shape)
    freshness = rng.random(500)
    tags = tuple(frozenset({f"g{k % 4}"}) for k in range(500))
    ns = [int(n) for n in rng.integers(1, 30, size=40)]
    rules = RecsysRules(freshness_boost=0.1)
    lists = apply_rules_many(scores, candidates, ns=ns, rules=rules, tags=tags, freshness=freshness)
    final, order = ordered(scores, candidates, rules=rules, freshness=freshness)
    for row, (n, (items, values)) in enumerate(zip(ns, lists, strict=True)):
        chosen = pick(final[row], n=n, tags=tags, max_per_tag=0, order=order[row])
        assert items == [int(candidates[row, j]) for j in chosen]
        assert values == final[row, chosen].tolist()
        assert len(items) == min(n, int(np.isfinite(scores[row]).sum()))
