"""Offline work on a Ray cluster of its own (two worker processes on this machine):
partitioned training frames, batch scoring and a worker killed in the middle of a job.

Skipped with the reason when Ray is not installed (``pip install 'driftloop[ray]'``);
CI installs the extra, and DRIFTLOOP_REQUIRE_SERVICES=1 makes a missing Ray a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from driftloop.audit import open_audit_log
from driftloop.cli import app
from driftloop.compute import Engine, LocalEngine, RayEngine
from driftloop.core.config import load_settings
from driftloop.features import FeatureStore
from driftloop.registry import Registry, Signature
from driftloop.training import train_and_promote
from driftloop.training._ray_fit import fit_lightgbm_on_ray
from driftloop.training._shared_search import open_storage, shared_search
from partition_world import FEATURES, assert_same_frame, definitions, entity_rows, write_world
from ray_cluster import local_ray_cluster
from ray_faults import KillAtRound, WorkerKillingEngine
from search_world import problem
from services import require_postgres
from tabular_world import model_toml, table

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[RayEngine]:
    with local_ray_cluster(cpus=2) as address:
        engine = RayEngine(address, max_retries=3)
        try:
            yield engine
        finally:
            engine.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-world")
    write_world(folder)
    return folder


def frame(world: Path, engine: Engine, parts: int) -> object:
    store = FeatureStore(definitions=definitions(world), engine=engine, partitions=parts)
    try:
        return store.training_frame(entity_rows(3_000), FEATURES)
    finally:
        store.close()


def test_ray_training_frame_equals_the_local_frame_row_for_row(
    world: Path, ray_engine: RayEngine
) -> None:
    assert ray_engine.workers == 2
    assert_same_frame(frame(world, ray_engine, 4), frame(world, LocalEngine(), 1))


def test_compute_settings_send_the_frame_to_ray_one_partition_per_cpu(
    world: Path, ray_engine: RayEngine
) -> None:
    # what driftloop train does with [compute] engine = "ray": the store opens the engine
    environ = {"DRIFTLOOP_COMPUTE__ENGINE": "ray", "DRIFTLOOP_COMPUTE__ADDRESS": ray_engine.address}
    settings = load_settings(root=world, environ=environ)
    store = FeatureStore(settings, definitions=definitions(world))
    try:
        engine, parts = store._partitioning()
        assert (engine.name, parts) == ("ray", 2)
        got = store.training_frame(entity_rows(3_000), FEATURES)
    finally:
        store.close()
    assert_same_frame(got, frame(world, LocalEngine(), 1))


def test_a_worker_killed_mid_job_costs_a_retry_not_the_frame(
    world: Path, ray_engine: RayEngine, tmp_path: Path
) -> None:
    marker = tmp_path / "killed-worker.pid"
    killing = WorkerKillingEngine(ray_engine, marker)
    got = frame(world, killing, 4)
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # the worker that ran the first attempt is gone
    assert_same_frame(got, frame(world, LocalEngine(), 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, ray_engine: RayEngine) -> Path:
    """A project with a champion trained on its own rows, its compute on the cluster."""
    root = tmp_path_factory.mktemp("ray-project")
    (root / "data").mkdir()
    table("binary", rows=3_000, days=10).to_parquet(root / "data" / "loans.parquet")
    (root / "driftloop.toml").write_text(
        model_toml("binary", data="data/loans.parquet", name="loans")
        + "params = {n_estimators = 20}\n\n"
        + "[gates]\nmax_ece = 1.0\n\n"  # calibration is not what this test is about
        + f'[compute]\nengine = "local"\naddress = "{ray_engine.address}"\n'
    )
    trained = CliRunner().invoke(
        app, ["train", "--end", "2026-03-08", "--promote", "--config", str(root / "driftloop.toml")]
    )
    assert trained.exit_code == 0, trained.output
    return root


def score(project: Path, *args: str, data: str = "data/loans.parquet") -> None:
    config = ["--config", str(project / "driftloop.toml")]
    scored = CliRunner().invoke(app, ["score", "loans", "--data", data, *args, *config])
    assert scored.exit_code == 0, scored.output


def test_ray_batch_scores_equal_local_scores_and_every_one_is_audited(project: Path) -> None:
    score(project, "--out", str(project / "local.parquet"))
    score(project, "--engine", "ray", "--audit", "--out", str(project / "ray-scores"))
    local = pd.read_parquet(project / "local.parquet")
    on_ray = pd.read_parquet(project / "ray-scores")
    assert len(list((project / "ray-scores").glob("*.parquet"))) >= 1
    key = "application_id"
    pd.testing.assert_frame_equal(
        on_ray.sort_values(key).reset_index(drop=True),
        local.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )
    settings = load_settings(root=project, environ={})
    log = open_audit_log(settings.audit.url, root=settings.root)
    try:
        audited = log.window(
            pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2027-01-01", tz="UTC")
        )
    finally:
        log.close()
    assert len(audited) == len(local)
    assert audited["prediction_id"].is_unique
    by_id = dict(zip(local[key].astype(str), local["score"], strict=True))
    ids = audited["prediction_id"].str.removeprefix("batch-loans-1-")  # batch-MODEL-VERSION-ID
    assert audited["score"].to_numpy() == pytest.approx(ids.map(by_id).to_numpy(), rel=1e-12)


def test_ray_scores_a_csv_of_texts_booleans_and_gaps_as_the_local_command_does(
    project: Path,
) -> None:
    later = table("binary", rows=2_500, days=10, seed=5)
    assert later["owns_home"].isna().any()
    assert later["income"].isna().any()
    (project / "csv").mkdir()
    later.to_csv(project / "csv" / "later.csv", index=False)  # True/False, yes/no, gaps
    score(project, "--out", str(project / "csv-local.parquet"), data="csv/later.csv")
    local = pd.read_parquet(project / "csv-local.parquet").sort_values("application_id")
    assert len(local) == len(later)
    # a path, and a URI read through pyarrow's file systems as s3://... would be
    for n, data in enumerate(["csv/later.csv", (project / "csv").as_uri()]):
        out = project / f"csv-ray-{n}"
        score(project, "--engine", "ray", "--out", str(out), data=data)
        pd.testing.assert_frame_equal(
            pd.read_parquet(out).sort_values("application_id").reset_index(drop=True),
            local.reset_index(drop=True),
            check_exact=True,
        )


def test_ray_scoring_refuses_a_file_neither_parquet_nor_csv_naming_it(project: Path) -> None:
    (project / "data" / "rows.json").write_text('{"application_id": "A1"}\n')
    config = ["--config", str(project / "driftloop.toml")]
    scored = CliRunner().invoke(
        app, ["score", "loans", "--data", "data/rows.json", "--engine", "ray", *config]
    )
    assert scored.exit_code != 0
    assert "data/rows.json is neither Parquet nor CSV" in scored.output


def test_search_trials_of_ray_workers_and_another_machine_share_one_postgres_study(
    ray_engine: RayEngine,
) -> None:
    import optuna

    url = require_postgres()
    study = f"test-{uuid.uuid4().hex[:12]}"
    try:
        on_ray = shared_search(ray_engine, url, study, trials=4, **problem())
        # another machine (this process) asks the same study for 6: it runs what is left
        here = shared_search(LocalEngine(), url, study, trials=6, **problem())
        with open_storage(url) as storage:
            trials = optuna.load_study(study_name=study, storage=storage).trials
    finally:
        with open_storage(url) as storage:
            optuna.delete_study(study_name=study, storage=storage)
    assert 4 <= on_ray["trials"] <= 5  # two loops may each finish a trial past the 4th
    assert here["trials"] == 6
    assert here["ran_here"] == 6 - on_ray["trials"]
    workers = {t.user_attrs["worker"] for t in trials}
    assert any(not w.endswith(f":{os.getpid()}") for w in workers)  # Ray workers ran some
    assert any(w.endswith(f":{os.getpid()}") for w in workers)  # and this process the rest
    assert here["workers"] == len(workers)


def test_training_on_ray_is_data_parallel_lightgbm_with_the_local_steps_and_keys(
    ray_engine: RayEngine, tmp_path: Path
) -> None:
    rows = table("binary", rows=2_000, days=10)
    results = {}
    for engine in ("local", "ray"):
        root = tmp_path / engine
        (root / "data").mkdir(parents=True)
        rows.to_parquet(root / "data" / "loans.parquet")
        (root / "driftloop.toml").write_text(
            model_toml("binary", data="data/loans.parquet", name="loans")
            + "params = {n_estimators = 20}\n\n[gates]\nmax_ece = 1.0\n\n"
            + f'[compute]\nengine = "{engine}"\naddress = "{ray_engine.address}"\n'
        )
        settings = load_settings(root / "driftloop.toml", environ={})
        results[engine], _ = train_and_promote(settings, "loans", alias=None)
        again, _ = train_and_promote(settings, "loans", alias=None)
        assert again.ran == []  # a finished pipeline resumes to nothing, on either engine
        registry = Registry.from_settings(settings)
        try:
            booster = registry.load("loans", 1, prefer_onnx=False).native
        finally:
            registry.close()
        text = booster.model_to_string()
        assert ("[tree_learner: data]" in text) == (engine == "ray")
        assert ("[num_machines: 2]" in text) == (engine == "ray")
    local, on_ray = results["local"], results["ray"]
    # the same steps under the same keys up to the fit; later keys hash the fitted model,
    # which data-parallel training builds differently
    assert [s.name for s in on_ray.steps] == [s.name for s in local.steps]
    fitted = [s.name for s in local.steps].index("fit") + 1
    assert [s.key for s in on_ray.steps[:fitted]] == [s.key for s in local.steps[:fitted]]
    assert on_ray.metrics["roc_auc"] == pytest.approx(local.metrics["roc_auc"], abs=0.05)


def separable(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, 6)), columns=[f"x{i}" for i in range(6)])
    logit = 1.5 * X["x0"] - X["x1"] + 0.8 * X["x2"] * X["x3"]
    return X, (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


def test_a_training_worker_killed_mid_fit_restarts_the_group_from_its_checkpoint(
    ray_engine: RayEngine, tmp_path: Path
) -> None:
    assert ray_engine.workers == 2  # connected: the fit runs on the test's cluster
    X, y = separable(4_000, seed=1)
    held_out, y_held_out = separable(2_000, seed=2)
    signature = Signature.from_frame(X)
    options = {"task": "binary", "classes": 2, "workers": 2, "checkpoint_every": 10}
    params = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15, "seed": 3}
    matrix = X.to_numpy(np.float64)
    clean = fit_lightgbm_on_ray(
        params, matrix, y, signature, storage=tmp_path / "train", name="clean", **options
    )
    marker = tmp_path / "killed-worker.pid"
    killer = KillAtRound(marker, round_=24)  # after 25 rounds; the checkpoint holds 20
    killed = fit_lightgbm_on_ray(
        params,
        matrix,
        y,
        signature,
        storage=tmp_path / "train",
        name="killed",
        max_failures=1,
        callbacks=[killer],
        **options,
    )
    dead = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)  # the training worker that reached round 24 is gone
    first = killer.first_rounds()
    assert [r for _, r in first] == [0, 0, 10 * 2, 10 * 2]  # two workers, twice
    assert dead in {p for p, _ in first[:2]}  # a worker of the first group died
    assert not {p for p, _ in first[:2]} & {p for p, _ in first[2:]}  # new worker processes
    # the restarted group went on from the checkpoint to the full 60 rounds, data-parallel
    assert killed.current_iteration() == clean.current_iteration() == 60
    text = killed.model_to_string()
    assert "[tree_learner: data]" in text
    assert "[num_machines: 2]" in text
    auc = {
        name: roc_auc_score(y_held_out, booster.predict(held_out.to_numpy(np.float64)))
        for name, booster in (("clean", clean), ("killed", killed))
    }
    assert auc["clean"] > 0.75
    assert auc["killed"] == pytest.approx(auc["clean"], abs=0.01)


TRAIN = """
import json, os, signal, sys
from driftloop.core.config import load_settings
from driftloop.training import train_and_promote

settings = load_settings(sys.argv[1], environ={})
kill_after = sys.argv[2]

def on_step(name, status, index, total):
    if name == kill_after and status == "done":  # its checkpoint is written
        os.kill(os.getpid(), signal.SIGKILL)

result, _ = train_and_promote(settings, "loans", alias=None, on_step=on_step)
print(json.dumps([[s.name, s.status, s.key] for s in result.steps]))
"""


def test_a_ray_training_run_killed_after_its_frame_resumes_from_the_checkpoint(
    ray_engine: RayEngine, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    table("binary", rows=2_000, days=10).to_parquet(tmp_path / "data" / "loans.parquet")
    config = tmp_path / "driftloop.toml"
    config.write_text(
        model_toml("binary", data="data/loans.parquet", name="loans")
        + "params = {n_estimators = 20}\n\n[gates]\nmax_ece = 1.0\n\n"
        + f'[compute]\nengine = "ray"\naddress = "{ray_engine.address}"\n'
    )

    def train(kill_after: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", TRAIN, str(config), kill_after]
        return subprocess.run(command, capture_output=True, text=True, timeout=900)

    killed = train("training_set")
    assert killed.returncode == -9, killed.stderr[-3000:]
    rerun = train("never")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    steps = {name: status for name, status, _ in json.loads(rerun.stdout.splitlines()[-1])}
    # the frame is read from the killed run's checkpoint, the rest runs, the fit on Ray
    assert steps == {
        "load": "cached",
        "training_set": "cached",
        "validate": "ran",
        "split": "ran",
        "fit": "ran",
        "evaluate": "ran",
        "gates": "ran",
        "register": "ran",
    }
    settings = load_settings(config, environ={})
    registry = Registry.from_settings(settings)
    try:
        assert [mv.version for mv in registry.versions("loans")] == [1]
        text = registry.load("loans", 1, prefer_onnx=False).native.model_to_string()
    finally:
        registry.close()
    assert "[tree_learner: data]" in text
    assert "[num_machines: 2]" in text
