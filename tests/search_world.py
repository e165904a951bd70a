"""A small binary problem for hyper-parameter searches: encoded matrices and a signature."""

from __future__ import annotations

from typing import Any

import numpy as np

from driftloop.registry import FeatureSpec, Signature
from driftloop.training import default_estimator


def problem(rows: int = 600, seed: int = 5) -> dict[str, Any]:
    """``shared_search`` keyword arguments but the engine, storage and study."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.8, size=rows) > 0).astype(int)
    half = rows // 2
    signature = Signature(tuple(FeatureSpec(f"x{j}") for j in range(4)), "binary", label="y")
    return {
        "estimator": default_estimator("binary"),
        "train": (X[:half], y[:half]),
        "valid": (X[half:], y[half:]),
        "signature": signature,
        "timeout_s": None,
        "seed": 0,
        "space": small_space,
    }


def small_space(trial: Any) -> dict[str, Any]:
    """Few, small trees: a trial takes milliseconds."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 16),
        "n_estimators": trial.suggest_int("n_estimators", 5, 20),
    }
