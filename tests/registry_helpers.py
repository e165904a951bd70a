"""Shared helpers for registry tests: small fitted models and per-test PostgreSQL schemas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import lightgbm as lgb
import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftloop.registry import Registry, Signature, artifact_store_from_url
from driftloop.registry._db import make_engine
from driftloop.registry._schema import model_versions


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


def old_registry_rows(url: str, artifact_root: str) -> Registry:
    """Model ``loans`` with versions 1 and 2 and alias champion -> 2, written as code
    before tenants (r0004) wrote them, with no tenant column; returns the registry on
    that database, not migrated (close it)."""
    old_models = sa.Table(  # the models table before r0004
        "driftloop_models",
        sa.MetaData(),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    _, X = toy_lightgbm()
    donor = Registry(make_engine(url), artifact_store_from_url(artifact_root), migrate=False)
    created = pd.Timestamp("2025-06-01T09:00:00Z").to_pydatetime()
    artifacts = {"model": donor.store.put(b"not-loaded-here")}
    with donor.engine.begin() as conn:
        conn.execute(old_models.insert().values(name="loans", latest_version=2, created_at=created))
        for version in (1, 2):
            conn.execute(
                model_versions.insert().values(
                    model_name="loans",
                    version=version,
                    flavor="lightgbm",
                    created_at=created,
                    created_by="ana",
                    signature=Signature.from_frame(X).to_json(),
                    params={},
                    metrics={"roc_auc": 0.8},
                    tags={},
                    lineage={},
                    gate_report=None,
                    artifacts=artifacts,
                    profile=None,
                    card="# loans",
                )
            )
    donor.set_alias("loans", "champion", 2, who="ana", why="before tenants")
    return donor
