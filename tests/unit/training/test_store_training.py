"""Training on the feature store's features (the fraud example project): point in time,
with the feature-view versions recorded, reruns when the feature rows change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.cli._train import model_store
from driftloop.core.config import Settings, load_settings
from driftloop.core.errors import UnknownFeatureError
from driftloop.data import FRAUD_MODEL_TOML
from driftloop.features import FeatureStore, example_features_py, transaction_feature_names
from driftloop.registry import Registry
from driftloop.training import TrainingPipeline, build_training_set, training_source

FAST = {"n_estimators": 30}
LOOSE = "[gates]\nmax_ece = 0.5\nmax_latency_ms = 1e4\n"  # small data, loaded machine
runner = CliRunner()


def fraud_project(tmp_path: Path, data_dir: Path, name: str = "fraud") -> Settings:
    root = tmp_path / name
    shutil.copytree(data_dir, root / "data")
    toml = FRAUD_MODEL_TOML.replace(
        "[models.fraud.gates]\n", "[models.fraud.gates]\nmax_equal_opportunity_difference = 1.0\n"
    )
    (root / "driftloop.toml").write_text(LOOSE + toml)
    (root / "features.py").write_text(example_features_py())
    return load_settings(root / "driftloop.toml", environ={})


@pytest.fixture
def project(tmp_path: Path, data_dir: Path) -> Iterator[tuple[Settings, FeatureStore]]:
    settings = fraud_project(tmp_path, data_dir)
    store = model_store(settings, settings.model("fraud"))
    assert store is not None
    yield settings, store
    store.close()


def test_training_set_holds_the_stores_point_in_time_features_of_each_row(
    project: tuple[Settings, FeatureStore],
) -> None:
    settings, store = project
    config = settings.model("fraud")
    rows = training_source(config.data, root=settings.root).window(config.timestamp)
    built = build_training_set(rows, config, store=store, sensitive=["age_band"])
    names = [n.split(":")[-1] for n in transaction_feature_names()]
    assert built.features == ["amount", *names]
    entity = rows[["tx_id", "tx_datetime", "customer_id", "terminal_id", "amount"]]
    expected = store.training_frame(
        entity, transaction_feature_names(), timestamp_field="tx_datetime"
    )
    frame = built.frame
    assert frame["tx_id"].tolist() == rows["tx_id"].tolist()
    for name in names:
        np.testing.assert_allclose(
            frame[name].to_numpy(dtype=np.float64, na_value=np.nan),
            expected[name].to_numpy(dtype=np.float64, na_value=np.nan),
            rtol=1e-12,
            err_msg=name,
        )
    assert frame["age_band"].tolist() == rows["age_band"].tolist()  # context, not a feature
    assert "age_band" not in built.features
    spec = built.signature.spec("customer_count_1h")
    assert (spec.view, spec.view_version) == ("customer_tx", store.view("customer_tx").version)
    assert built.signature.spec("amount").view is None  # a request field
    assert built.entity_keys == ("customer_id", "terminal_id")


def test_registered_version_names_the_feature_view_versions_it_trained_on(
    project: tuple[Settings, FeatureStore],
) -> None:
    settings, store = project
    result = TrainingPipeline.from_settings(settings, "fraud", store=store, params=FAST).run()
    assert result.version is not None
    stored = Registry.from_settings(settings).get("fraud", result.version.version)
    version = store.view("terminal_fraud").version
    assert stored.lineage["feature_views"]["terminal_frauds_30d"] == ["terminal_fraud", version]
    assert stored.lineage["entity_keys"] == ["customer_id", "terminal_id"]
    assert stored.feature_names[0] == "amount"
    checks = {c["name"] for c in result.gate_report["checks"]}
    assert {"fairness_dp:age_band", "fairness_eo:age_band"} <= checks


def test_changed_feature_source_rows_rerun_the_training_set_and_what_follows(
    project: tuple[Settings, FeatureStore],
) -> None:
    settings, store = project
    config = settings.model("fraud").model_copy(update={"store_features": ("customer_tx:*",)})

    def run() -> list[str]:
        return (
            TrainingPipeline.from_settings(
                settings, "fraud", config=config, store=store, params=FAST
            )
            .run()
            .ran
        )

    assert "training_set" in run()
    assert run() == []  # same definitions, same source rows: nothing to do
    path = settings.root / "data" / "transactions.parquet"
    tx = pd.read_parquet(path)
    tx.loc[tx.index[-50:], "amount"] *= 3.0
    tx.to_parquet(path, index=False)
    assert run()[:1] == ["load"]


def test_unknown_store_feature_is_refused_with_the_known_ones(
    project: tuple[Settings, FeatureStore],
) -> None:
    settings, store = project
    config = settings.model("fraud").model_copy(update={"store_features": ("customer_count_2h",)})
    pipeline = TrainingPipeline.from_settings(settings, "fraud", config=config, store=store)
    with pytest.raises(UnknownFeatureError, match="Known: customer_tx:customer_amount_max_24h"):
        pipeline.run()


SERVING_WORKER = textwrap.dedent(
    """
    import os, sys
    from starlette.testclient import TestClient
    from driftloop.cli._serve import build_app
    env = {**os.environ, "DRIFTLOOP_SERVE_MODELS": "fraud",
           "DRIFTLOOP_SERVE_ENTITY_KEYS": "customer_id,terminal_id", "DRIFTLOOP_SERVE_AUDIT": "0"}
    with TestClient(build_app(env)) as client:
        instance = {"customer_id": 3, "terminal_id": 5, "amount": 12.5}
        got = client.post("/v1/models/fraud/predict", json={"instances": [instance]})
        print(got.status_code, flush=True)
        sys.stdin.read()  # keep serving until the test is done
    """
)


def test_retraining_from_the_feature_store_while_a_server_enriches_from_it(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fraud_project(tmp_path, data_dir, "cli")
    monkeypatch.chdir(settings.root)
    first = runner.invoke(app, ["train", "fraud", "--promote"])
    assert first.exit_code == 0, first.output
    with subprocess.Popen(
        [sys.executable, "-c", SERVING_WORKER],
        cwd=settings.root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ) as server:
        assert server.stdout is not None
        status = server.stdout.readline().strip()
        # The server only reads online features: it must not hold the offline store's
        # DuckDB file, which the retraining needs.
        again = runner.invoke(app, ["train", "fraud", "--rerun", "training_set"])
        _, errors = server.communicate("", timeout=60)
    assert status == "200", errors
    assert again.exit_code == 0, again.output
    assert "training_set │ ran" in again.output
