"""Hyper-parameter search shared by several workers (and machines) through one Optuna study
in the registry's database.

With ``[compute] engine = "ray"`` the pipeline's search step runs one Optuna loop per
worker of the cluster; every loop loads the same study from the registry's database
(PostgreSQL: the tables live in the schema ``driftloop_search``; SQLite: the file
``.driftloop/search.db`` beside the project's other state) and stops when the study holds
``trials`` finished trials, whoever ran them. The study is named after the pipeline and
its search step's checkpoint key, so a rerun after a kill, or another machine running the
same step, joins the trials already finished instead of starting over. Each trial records
the worker that ran it (``worker``: host and process id).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftloop.compute import Engine
from driftloop.core.config import Settings
from driftloop.core.urls import local_path, scheme_of
from driftloop.registry import Signature
from driftloop.training._fit import Objective, SearchSpace, lightgbm_space, search_metric

__all__ = ["SCHEMA", "open_storage", "search_storage_url", "shared_search"]

SCHEMA = "driftloop_search"


def search_storage_url(settings: Settings) -> str:
    """Where studies live: the registry's PostgreSQL, else a SQLite file in the state."""
    url = settings.registry.url
    if scheme_of(url).startswith("postgresql"):
        return url
    return f"sqlite:///{settings.state_dir().resolve() / 'search.db'}"


@contextmanager
def open_storage(url: str) -> Iterator[Any]:
    """An Optuna storage on ``url`` (PostgreSQL: in schema ``driftloop_search``, made when
    missing), its connections closed on leaving."""
    storage = _storage(url)
    try:
        yield storage
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _storage(url: str) -> Any:
    import optuna

    if not scheme_of(url).startswith("postgresql"):
        if scheme_of(url) == "sqlite":
            local_path(url, Path.cwd()).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    except sa.exc.IntegrityError:
        pass  # another machine made it at the same moment
    finally:
        engine.dispose()
    options = {"connect_args": {"options": f"-c search_path={SCHEMA}"}}
    return optuna.storages.RDBStorage(url, engine_kwargs=options)


@dataclass(frozen=True)
class _SearchJob:
    """One worker's Optuna loop over the shared study."""

    storage: str
    study: str
    objective: Objective
    trials: int
    timeout_s: float | None
    seed: int


def _optimize(job: _SearchJob) -> int:
    """Run trials until the study holds ``job.trials`` finished ones; how many ran here."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with open_storage(job.storage) as storage:
        return _optimize_in(job, storage)


def _optimize_in(job: _SearchJob, storage: Any) -> int:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = optuna.load_study(
        study_name=job.study, storage=storage, sampler=optuna.samplers.TPESampler(seed=job.seed)
    )
    worker = f"{socket.gethostname()}:{os.getpid()}"
    ran = 0

    def objective(trial: Any) -> float:
        nonlocal ran
        trial.set_user_attr("worker", worker)
        ran += 1
        return job.objective(trial)

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    if _count(study, finished) < job.trials:
        study.optimize(
            objective,
            timeout=job.timeout_s,
            callbacks=[MaxTrialsCallback(job.trials, states=finished)],
        )
    return ran


def _count(study: Any, states: tuple[Any, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def shared_search(
    engine: Engine,
    storage_url: str,
    study_name: str,
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
    """Best parameters of the shared study after ``trials`` finished trials (see the
    module docs); one Optuna loop per worker of ``engine``."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, direction = search_metric(signature)
    with open_storage(storage_url) as storage:
        optuna.create_study(
            study_name=study_name, storage=storage, direction=direction, load_if_exists=True
        )
    objective = Objective(estimator, space or lightgbm_space, train, valid, signature, metric)
    jobs = [
        _SearchJob(storage_url, study_name, objective, trials, timeout_s, seed + n)
        for n in range(max(1, min(engine.workers, trials)))
    ]
    ran = engine.map(_optimize, jobs)
    with open_storage(storage_url) as storage:
        study = optuna.load_study(study_name=study_name, storage=storage)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best_params, best_value = dict(study.best_params), float(study.best_value)
    return {
        "params": best_params,
        f"best_valid_{metric}": best_value,
        "trials": len(done),
        "study": study_name,
        "workers": len({t.user_attrs.get("worker") for t in done}),
        "ran_here": int(sum(ran)),
    }
