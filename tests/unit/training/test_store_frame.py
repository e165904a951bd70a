"""Training sets from the feature store: point in time, with their feature-view versions."""

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
from driftloop.core.config import load_settings
from driftloop.core.errors import UnknownFeatureError
from driftloop.features import (
    FeatureStore,
    example_features_py,
    transaction_feature_names,
    transaction_feature_store,
)
from driftloop.registry import Registry
from driftloop.training import TrainingPipeline, feature_store_frame, load_window
from training_helpers import project

FAST = {"n_estimators": 30}
runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, data_dir: Path) -> Iterator[FeatureStore]:
    built = transaction_feature_store(data_dir, settings=project(tmp_path, "store"))
    yield built
    built.close()


def test_training_frame_is_the_stores_point_in_time_frame_of_each_transaction(
    store: FeatureStore, data_dir: Path
) -> None:
    window = load_window(data_dir, label="is_fraud", timestamp="tx_datetime")
    built = feature_store_frame(store)(window, "is_fraud", "tx_datetime")

    names = [n.split(":")[-1] for n in transaction_feature_names()]
    assert built.features == ["amount", *names]  # the request field the on-demand ratio reads
    tx = window.transactions
    entity = tx[["tx_id", "tx_datetime", "customer_id", "terminal_id", "amount"]]
    expected = store.training_frame(
        entity, transaction_feature_names(), timestamp_field="tx_datetime"
    )
    frame = built.frame
    assert frame["tx_id"].tolist() == tx["tx_id"].tolist()
    assert frame["is_fraud"].tolist() == tx["is_fraud"].tolist()
    for name in names:
        np.testing.assert_allclose(
            frame[name].to_numpy(),
            expected[name].to_numpy(dtype=np.float64, na_value=np.nan),
            rtol=1e-12,
            err_msg=name,
        )
        assert frame[name].dtype == np.float64
    # context for per-segment metrics and the fairness gate comes from the customers
    customers = window.customers.set_index("customer_id")
    assert frame["age_band"].tolist() == customers["age_band"].reindex(tx["customer_id"]).tolist()
    assert "segment" in frame.columns
    assert built.sources["customer_count_1h"] == ("customer_tx", store.view("customer_tx").version)
    ratio = store.catalog.on_demand["amount_over_customer_mean_7d"]
    assert built.sources[ratio.name] == (ratio.name, ratio.version)
    assert "amount" not in built.sources  # a request field, not from a feature view


def test_registered_version_names_the_feature_view_versions_it_trained_on(
    tmp_path: Path, store: FeatureStore, data_dir: Path
) -> None:
    settings = project(tmp_path)
    result = TrainingPipeline(
        settings, data_dir, params=FAST, training_frame=feature_store_frame(store)
    ).run()
    assert result.version is not None
    stored = Registry.from_settings(settings).get("fraud", result.version.version)
    by_name = {f.name: f for f in stored.signature.features}
    version = store.view("terminal_fraud").version
    assert (by_name["terminal_frauds_30d"].view, by_name["terminal_frauds_30d"].view_version) == (
        "terminal_fraud",
        version,
    )
    assert by_name["amount"].view is None
    assert stored.lineage["feature_views"]["terminal_frauds_30d"] == ["terminal_fraud", version]
    assert stored.feature_names[0] == "amount"
    assert stored.lineage["entity_keys"] == ["customer_id", "terminal_id"]


def test_changed_feature_source_rows_rerun_the_training_set_and_what_follows(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = project(tmp_path)
    features_data = tmp_path / "feature_source"
    shutil.copytree(data_dir, features_data)
    store = transaction_feature_store(features_data, settings=settings)

    def run() -> list[str]:
        frame_fn = feature_store_frame(store, ["customer_tx:*"])
        return TrainingPipeline(settings, data_dir, params=FAST, training_frame=frame_fn).run().ran

    assert "training_set" in run()
    assert run() == []  # same definitions, same source rows: nothing to do
    tx = pd.read_parquet(features_data / "transactions.parquet")
    tx.loc[tx.index[-50:], "amount"] *= 3.0  # the window's own files are untouched
    tx.to_parquet(features_data / "transactions.parquet", index=False)
    assert run()[:2] == ["training_set", "split"]
    store.close()


def test_unknown_feature_is_refused_before_the_pipeline_runs(store: FeatureStore) -> None:
    with pytest.raises(UnknownFeatureError, match="Known: customer_tx:customer_amount_max_24h"):
        feature_store_frame(store, ["customer_count_2h"])


@pytest.fixture
def cli_project(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / "driftloop.toml").write_text(
        "[gates]\nmax_equal_opportunity_difference = 1.0\nmax_ece = 0.5\n"
        "max_p99_latency_ms = 10000.0\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_uses_the_feature_store_when_the_project_has_features_py(cli_project: Path) -> None:
    rows = runner.invoke(app, ["train", "--pipeline", "rows"])
    assert rows.exit_code == 0, rows.output
    assert "Training set: per-row transaction features" in rows.output

    (cli_project / "features.py").write_text(example_features_py())
    store = runner.invoke(app, ["train", "--pipeline", "store"])
    assert store.exit_code == 0, store.output
    assert "Training set: feature store" in " ".join(store.output.split())
    serve = "driftloop serve -m store --entity-key customer_id --entity-key terminal_id"
    assert serve in " ".join(store.output.split())
    registry = Registry.from_settings(load_settings(environ={}))
    trained = registry.get("store")
    assert trained.signature.features[1].view == "customer_tx"
    assert registry.get("rows").signature.features[0].view is None

    old = runner.invoke(app, ["train", "--pipeline", "rows", "--features", "rows"])
    assert old.exit_code == 0, old.output
    assert old.output.count("cached") == 8  # the per-row path still works, unchanged
    subset = ["train", "--pipeline", "two", "--feature", "customer_count_1h"]
    picked = runner.invoke(app, [*subset, "--feature", "terminal_count_7d"])
    assert picked.exit_code == 0, picked.output
    assert registry.get("two").feature_names == ["customer_count_1h", "terminal_count_7d"]
    registry.close()


def test_train_refuses_an_unknown_training_set_kind(cli_project: Path) -> None:
    result = runner.invoke(app, ["train", "--features", "parquet"])
    assert result.exit_code == 2
    assert "--features must be 'store' or 'rows'" in result.output
    rows = runner.invoke(app, ["train", "--features", "rows", "--feature", "amount"])
    assert rows.exit_code == 2
    assert "--feature picks feature-store features" in rows.output


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
    cli_project: Path,
) -> None:
    (cli_project / "features.py").write_text(example_features_py())
    first = runner.invoke(app, ["train", "--promote"])
    assert first.exit_code == 0, first.output
    with subprocess.Popen(
        [sys.executable, "-c", SERVING_WORKER],
        cwd=cli_project,
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
        again = runner.invoke(app, ["train", "--pipeline", "retrain"])
        _, errors = server.communicate("", timeout=60)
    assert status == "200", errors
    assert again.exit_code == 0, again.output
    assert "Training set: feature store" in " ".join(again.output.split())
