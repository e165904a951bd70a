"""The ranker: LightGBM lambdarank over retrieved candidates and point-in-time features."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from driftloop.recsys._features import RANKING_FEATURES

__all__ = ["Ranker"]


class Ranker:
    """Scores candidates; higher is better. Saved as LightGBM's native text."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster

    @classmethod
    def fit(
        cls,
        rows: NDArray[np.float64],
        labels: NDArray[np.float64],
        groups: list[int],
        *,
        seed: int = 0,
        rounds: int = 150,
        learning_rate: float = 0.05,
        leaves: int = 31,
    ) -> Ranker:
        """Fit on ``rows`` grouped per user (``groups``: sizes). Every row of every answer
        goes through each tree: ``rounds`` x ``leaves`` sets the serving cost."""
        params: dict[str, Any] = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": learning_rate,
            "num_leaves": leaves,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.9,
            "lambdarank_truncation_level": 20,
            "num_threads": 1,
            "seed": seed,
            "deterministic": True,
            "verbose": -1,
        }
        data = lgb.Dataset(rows, labels, group=groups, feature_name=list(RANKING_FEATURES))
        return cls(lgb.train(params, data, num_boost_round=rounds))

    def score(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)

    def to_bytes(self) -> bytes:
        return str(self.booster.model_to_string()).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Ranker:
        return cls(lgb.Booster(model_str=data.decode()))
