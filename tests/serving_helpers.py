"""Small LightGBM models and rows shared by the serving tests and benchmarks."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

FEATURES = ["amount", "hour", "count_1d", "amount_7d", "risk"]


def train(seed: int, rounds: int = 20, features: list[str] | None = None) -> Any:
    names = features or FEATURES
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, len(names)))
    y = (x[:, 0] + x[:, 2] * x[:, -1] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    data = lgb.Dataset(x, y, feature_name=names)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, data, num_boost_round=rounds)


def row(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return dict(zip(FEATURES, rng.normal(size=len(FEATURES)).round(6).tolist(), strict=True))


def card_store(online_url: str, root: Any) -> Any:
    """A feature store with one view, ``card_stats`` (count_1d, amount_7d) by ``card_id``,
    online in ``online_url`` (the enrichment tests' store)."""
    import duckdb

    from driftloop.features import Entity, FeatureStore, FeatureView, Field, online_store_from_url

    card = Entity("card", ["card_id"])
    view = FeatureView(
        "card_stats",
        entities=[card],
        source="cards.parquet",
        timestamp_field="ts",
        schema=[Field("count_1d", "float64"), Field("amount_7d", "float64")],
    )
    return FeatureStore(
        definitions=[card, view],
        connection=duckdb.connect(),
        online_store=online_store_from_url(online_url, root),
        root=root,
    )
