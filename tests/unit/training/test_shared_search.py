"""A search shared through one Optuna study: trials add up across workers and runs."""

from __future__ import annotations

from pathlib import Path

import optuna

from driftloop.compute import LocalEngine
from driftloop.core.config import load_settings
from driftloop.training._shared_search import open_storage, search_storage_url, shared_search
from search_world import problem


def test_a_second_run_of_the_same_study_joins_the_finished_trials(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    first = shared_search(LocalEngine(), storage, "loans-abc", trials=4, **problem())
    again = shared_search(LocalEngine(), storage, "loans-abc", trials=6, **problem())
    assert first["trials"] == 4
    assert again["trials"] == 6  # two more, not six more: a rerun resumes the study
    assert again["ran_here"] == 2
    with open_storage(storage) as opened:
        study = optuna.load_study(study_name="loans-abc", storage=opened)
        assert study.best_params == again["params"]
        assert all(t.user_attrs.get("worker") for t in study.trials)


def test_studies_live_beside_the_project_state_without_postgresql(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path, environ={})
    assert search_storage_url(settings) == f"sqlite:///{tmp_path.resolve()}/.driftloop/search.db"
    url = "postgresql+psycopg://db.internal/registry"
    settings = load_settings(root=tmp_path, environ={"DRIFTLOOP_REGISTRY__URL": url})
    assert search_storage_url(settings) == url
