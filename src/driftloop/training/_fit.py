"""Fitting: the default LightGBM estimator, any estimator with fit/predict_proba, Optuna."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from driftloop.core.errors import InvalidParameterError
from driftloop.stats import roc_auc

__all__ = ["SearchSpace", "check_estimator", "default_estimator", "fit_estimator", "search"]

SearchSpace = Callable[[Any], dict[str, Any]]
"""``space(trial) -> params`` for an Optuna trial."""


def default_estimator(seed: int = 0, threads: int = 1) -> Any:
    """LightGBM, deterministic (same data and seed give the same model bytes)."""
    import lightgbm as lgb

    return lgb.LGBMClassifier(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        subsample=1.0,
        colsample_bytree=1.0,
        random_state=seed,
        n_jobs=threads,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def check_estimator(estimator: Any) -> None:
    """Refuse what cannot be trained and scored by the pipeline."""
    missing = [
        m for m in ("fit", "predict_proba", "get_params", "set_params") if not hasattr(estimator, m)
    ]
    if missing:
        raise InvalidParameterError(
            f"Estimator {type(estimator).__qualname__} has no {', '.join(missing)}; the "
            "pipeline needs a scikit-learn style classifier with fit and predict_proba "
            "(positive-class scores)."
        )


def fit_estimator(estimator: Any, params: Mapping[str, Any], X: pd.DataFrame, y: pd.Series) -> Any:
    """A fresh clone of ``estimator`` with ``params``, fitted on ``(X, y)``."""
    from sklearn.base import clone

    model = clone(estimator)
    if params:
        model.set_params(**params)
    model.fit(X, y)
    return model


def _lightgbm_space(trial: Any) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
    }


def search(
    estimator: Any,
    train: tuple[pd.DataFrame, pd.Series],
    valid: tuple[pd.DataFrame, pd.Series],
    *,
    trials: int,
    timeout_s: float | None,
    seed: int,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
    """Best parameters by validation ROC AUC over an Optuna TPE search (seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space or _lightgbm_space

    def objective(trial: Any) -> float:
        model = fit_estimator(estimator, space(trial), *train)
        scores = np.asarray(model.predict_proba(valid[0])[:, 1], dtype=np.float64)
        return roc_auc(valid[1], scores)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    return {
        "params": dict(study.best_params),
        "best_valid_auc": float(study.best_value),
        "trials": len(study.trials),
    }
