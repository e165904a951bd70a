"""Shared helpers for registry tests: small fitted models and per-test PostgreSQL schemas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import lightgbm as lgb
import numpy as np
import pandas as pd
import sqlalchemy as sa


def toy_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"amount": rng.gamma(2.0, 30.0, n), "hour": rng.integers(0, 24, n)})
    X["hour"] = X["hour"].astype(np.float64)
    logit = (X["amount"] - 80) / 20 + (X["hour"] < 5) * 1.5
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="label")
    return X, y


def toy_lightgbm(seed: int = 0) -> tuple[lgb.LGBMClassifier, pd.DataFrame]:
    X, y = toy_frame(seed=seed)
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1, random_state=seed)
    return model.fit(X, y), X


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; yields a URL whose search_path is it."""
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
