"""Fitting: the default LightGBM estimator per task, any scikit-learn style estimator,
categorical features, Optuna search on the task's metric."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError
from driftloop.registry import Signature
from driftloop.stats import METRICS, TASKS, Outputs, evaluate

__all__ = [
    "Objective",
    "SearchSpace",
    "check_estimator",
    "default_estimator",
    "fit_estimator",
    "lightgbm_space",
    "search",
    "search_metric",
]

SearchSpace = Callable[[Any], dict[str, Any]]
"""``space(trial) -> params`` for an Optuna trial."""


def default_estimator(task: str = "binary", seed: int = 0, threads: int = 1) -> Any:
    """LightGBM for ``task``, deterministic (same data and seed give the same model bytes)."""
    import lightgbm as lgb

    params: dict[str, Any] = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "random_state": seed,
        "n_jobs": threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    if task == "regression":
        return lgb.LGBMRegressor(**params)
    return lgb.LGBMClassifier(**params)


def check_estimator(estimator: Any, task: str) -> None:
    """Refuse what cannot be trained and scored for ``task``."""
    scorer = "predict" if task == "regression" else "predict_proba"
    missing = [m for m in ("fit", scorer, "get_params", "set_params") if not hasattr(estimator, m)]
    if missing:
        raise InvalidParameterError(
            f"Estimator {type(estimator).__qualname__} has no {', '.join(missing)}; a {task} "
            f"model needs a scikit-learn style estimator with fit and {scorer}."
        )


def _categorical(signature: Signature) -> list[int]:
    return [j for j, f in enumerate(signature.features) if f.kind == "category"]


def fit_estimator(
    estimator: Any,
    params: Mapping[str, Any],
    X: NDArray[np.float64],
    y: NDArray[Any],
    signature: Signature,
) -> Any:
    """A fresh clone of ``estimator`` with ``params``, fitted on the encoded matrix ``X``;
    LightGBM is told which columns are categories (their codes)."""
    import lightgbm as lgb
    from sklearn.base import clone

    model = clone(estimator)
    if params:
        try:
            model.set_params(**params)
        except ValueError as exc:
            raise InvalidParameterError(f"Estimator parameters {dict(params)}: {exc}") from None
    if isinstance(model, lgb.LGBMModel):
        model.fit(
            X, y, feature_name=list(signature.names), categorical_feature=_categorical(signature)
        )
    else:
        model.fit(X, y)
    return model


def lightgbm_space(trial: Any) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
    }


def _raw(model: Any, X: NDArray[np.float64], task: str) -> NDArray[np.float64]:
    booster = getattr(model, "booster_", None)
    if booster is not None:  # LightGBM: the Booster takes the matrix as the server does
        return np.asarray(booster.predict(X, num_threads=1), dtype=np.float64)
    if task == "regression":
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    return proba[:, 1] if task == "binary" else proba


class Objective:
    """An Optuna objective: fit ``estimator`` with the trial's parameters on ``train``,
    score ``metric`` on ``valid``. A plain object, so a worker can receive it."""

    def __init__(
        self,
        estimator: Any,
        space: SearchSpace,
        train: tuple[NDArray[np.float64], NDArray[Any]],
        valid: tuple[NDArray[np.float64], NDArray[Any]],
        signature: Signature,
        metric: str,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.train = train
        self.valid = valid
        self.signature = signature
        self.metric = metric

    def __call__(self, trial: Any) -> float:
        task = self.signature.task
        model = fit_estimator(self.estimator, self.space(trial), *self.train, self.signature)
        outputs = Outputs(task, _raw(model, self.valid[0], task), self.signature.classes)
        return float(evaluate(outputs, self.valid[1]).get(self.metric, np.nan))


def search_metric(signature: Signature) -> tuple[str, Literal["maximize", "minimize"]]:
    """The metric a search optimises and its direction (``maximize`` / ``minimize``)."""
    metric = signature.metric or TASKS[signature.task].default_metric
    return metric, "maximize" if METRICS[metric].higher_is_better else "minimize"


def search(
    estimator: Any,
    train: tuple[NDArray[np.float64], NDArray[Any]],
    valid: tuple[NDArray[np.float64], NDArray[Any]],
    *,
    signature: Signature,
    trials: int,
    timeout_s: float | None,
    seed: int,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
    """Best parameters by the model's metric on the validation split (Optuna TPE, seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, direction = search_metric(signature)
    objective = Objective(estimator, space or lightgbm_space, train, valid, signature, metric)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    return {
        "params": dict(study.best_params),
        f"best_valid_{metric}": float(study.best_value),
        "trials": len(study.trials),
    }
