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
