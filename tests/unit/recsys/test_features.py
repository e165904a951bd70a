from __future__ import annotations

import numpy as np
import pandas as pd

from driftloop.recsys._features import Snapshot
from recsys_world import world


def snapshot() -> Snapshot:
    frame, catalog = world()
    items = tuple(catalog.items["item_id"])
    tags = dict(zip(catalog.items["item_id"], catalog.items["genres"], strict=True))
    # years with fractions, so that a sum's order would show in its last bits
    year = catalog.items["year"].to_numpy()
    years = {i: year[k] + 0.1 * (k % 7) for k, i in enumerate(items)}
    return Snapshot.at_time(frame, pd.Timestamp("2024-03-15", tz="UTC"), items, tags, years)


def test_a_users_ranking_features_do_not_depend_on_the_rest_of_its_batch() -> None:
    snap = snapshot()
    rng = np.random.default_rng(0)
    users = [u for u in sorted(snap.history) if snap.history[u]][:12]
    seen = [snap.positions(snap.history[u]) for u in users]
    seen[4] = np.zeros(0, dtype=np.int64)  # a user with nothing seen, mid-batch
    sizes = [len(s) for s in seen]
    ratings = [snap.user_mean_rating.get(u) for u in users]
    per_user = 7
    owner = np.repeat(np.arange(len(users)), per_user)
    candidates = rng.integers(0, len(snap.items), size=len(owner))
    scores = rng.normal(size=len(owner))
    ranks = np.tile(np.arange(per_user), len(users))
    batch = snap.rows_many(seen, sizes, ratings, owner, candidates, scores, ranks)
    for u in range(len(users)):
        mine = owner == u
        alone = snap.rows_many(
            [seen[u]],
            [sizes[u]],
            [ratings[u]],
            np.zeros(per_user, dtype=np.int64),
            candidates[mine],
            scores[mine],
            ranks[mine],
        )
        np.testing.assert_array_equal(batch[mine], alone)  # bit for bit, NaN where NaN
    nothing = batch[owner == 4]
    assert (nothing[:, 8] == 0.0).all()  # no tag affinity without items seen
    assert np.isnan(nothing[:, 9]).all()  # nor a year gap
