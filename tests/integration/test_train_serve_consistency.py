"""The features a model trains on are exactly the features it is served.

Train from the feature store (point-in-time frame), register, then serve the version
with the same definitions online: history materialized up to the new transaction's
time, the transaction itself not pushed (windows cover the events before a row's time,
offline and online: docs/features.md), its entity keys in the request. The feature
vector the server used, read back from the audit log, must equal the training frame row
computed offline for that transaction, and the score the model's offline score of that
row. Scoring happens now (windows are evaluated as of now), so the simulated history is
moved to end just before now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import Settings, load_settings
from driftloop.data import fraud_model_config, simulate_transactions
from driftloop.features import FeatureStore, online_store_from_url, transaction_feature_store
from driftloop.registry import Registry
from driftloop.serving import FeatureStoreSource, RegistryModelSource, ServedModel, create_app
from driftloop.training import TrainingPipeline, model_inputs

pytestmark = pytest.mark.integration

WINDOWS = [timedelta(hours=1), timedelta(hours=24), timedelta(days=7), timedelta(days=30)]
# History is kept off every window's far edge by this much: the seconds between the
# event time and the server's read ("now") cannot move a row across an edge.
EDGE_MARGIN = timedelta(minutes=10)
KEYS = ("customer_id", "terminal_id")
CONFIG = fraud_model_config()


@dataclass(frozen=True)
class Trained:
    settings: Settings
    data: Path
    version: int
    features: list[str]
    event: dict[str, Any]


def _history_ending_before(now: datetime, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulated transactions and labels moved to end 10 minutes before ``now``."""
    sim = simulate_transactions(customers=200, terminals=400, days=40, seed=11)
    tx, labels = sim.transactions.copy(), sim.labels.copy()
    shift = (now - timedelta(minutes=10)) - tx["tx_datetime"].max().to_pydatetime()
    tx["tx_datetime"] += shift
    labels["label_known_at"] += shift
    edge = np.zeros(len(tx), dtype=bool)
    for window in WINDOWS:
        lo = now - window
        edge |= ((tx["tx_datetime"] >= lo) & (tx["tx_datetime"] <= lo + EDGE_MARGIN)).to_numpy()
    tx, labels = tx[~edge], labels[labels["tx_id"].isin(tx.loc[~edge, "tx_id"])]
    folder.mkdir()
    sim.customers.to_parquet(folder / "customers.parquet", index=False)
    return tx.reset_index(drop=True), labels.reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("project")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # naive UTC, as the data
    data = root / "data"
    tx, labels = _history_ending_before(now, data)
    tx.to_parquet(data / "transactions.parquet", index=False)
    labels.to_parquet(data / "labels.parquet", index=False)
    settings = load_settings(root=root, environ={}, overrides={"gates.max_latency_ms": 1e4})
    store = transaction_feature_store(data, settings=settings)
    result = TrainingPipeline.from_settings(
        settings, "fraud", config=CONFIG, store=store, params={"n_estimators": 40}
    ).run()
    store.close()
    assert result.version is not None
    registry = Registry.from_settings(settings)
    registry.set_alias("fraud", "champion", result.version.version, who="test", why="serve it")
    registry.close()

    # The transaction to score: the latest card in the history, at its latest terminal,
    # now. It joins the source files (as the event log would) for the offline frame.
    last = tx.loc[tx["tx_datetime"].idxmax()]
    event = {
        "tx_id": int(tx["tx_id"].max()) + 1,
        "tx_datetime": pd.Timestamp(now),
        "customer_id": int(last["customer_id"]),
        "terminal_id": int(last["terminal_id"]),
        "amount": 187.25,
    }
    row = {**tx.iloc[-1].to_dict(), **event, "is_fraud": 0, "fraud_scenario": 0}
    pd.concat([tx, pd.DataFrame([row]).astype(tx.dtypes)]).to_parquet(
        data / "transactions.parquet", index=False
    )
    label = pd.DataFrame(
        [{"tx_id": event["tx_id"], "is_fraud": 0, "label_known_at": now + timedelta(days=7)}]
    )
    pd.concat([labels, label.astype(labels.dtypes)]).to_parquet(
        data / "labels.parquet", index=False
    )
    return Trained(settings, data, result.version.version, result.version.feature_names, event)


def _offline_row(trained: Trained) -> pd.Series:
    """The training-frame row of the event, built the way training built its rows."""
    store = transaction_feature_store(
        trained.data, connection=duckdb.connect(), root=trained.settings.root
    )
    signature = Registry.from_settings(trained.settings).get("fraud", trained.version).signature
    built = model_inputs(pd.DataFrame([trained.event]), signature, store=store)
    store.close()
    return built.iloc[0]


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    return str(request.getfixturevalue("redis_url"))


def test_served_feature_vector_and_score_equal_the_training_frame_row(
    trained: Trained, online_url: str, tmp_path: Path
) -> None:
    now = trained.event["tx_datetime"].to_pydatetime()
    store = FeatureStore(
        trained.settings,
        definitions=transaction_feature_store(trained.data).catalog.all(),
        connection=duckdb.connect(),
        online_store=online_store_from_url(online_url, trained.settings.root),
    )
    # what the server knows when the transaction arrives: everything before it; the
    # transaction itself is not pushed (it is scored first)
    store.materialize(now - timedelta(days=31), now, progress=False)
    event = {k: trained.event[k] for k in ("customer_id", "terminal_id", "amount")}

    registry = Registry.from_settings(trained.settings)
    audit = SqliteAuditLog(tmp_path / "audit.db")
    app = create_app(
        [ServedModel("fraud", entity_keys=KEYS)],
        RegistryModelSource(registry),
        audit=audit,
        features=FeatureStoreSource(store),
        refresh_s=0,
    )
    with TestClient(app) as client:
        response = client.post("/v1/models/fraud/predict", json={"instances": [event]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == str(trained.version)
    record = audit.get(body["predictions"][0]["prediction_id"])
    assert record is not None

    offline = _offline_row(trained)
    assert list(record.features) == trained.features
    for name in trained.features:
        expected = float(offline[name])
        served = record.features[name]
        if np.isnan(expected):
            assert served is None, name
        else:
            assert served == pytest.approx(expected, rel=1e-12, abs=1e-12), name
    # the card's previous transaction, 10 minutes earlier, counts; the scored one does not
    assert record.features["customer_count_1h"] >= 1
    assert record.features["terminal_labelled_30d"] > 0  # labels known before now count

    # Window features are stamped with their newest event before the transaction (its
    # card's and terminal's previous one), or for late labels the newest transaction
    # whose label was known before it.
    def stamp(name: str) -> pd.Timestamp | None:
        value = record.feature_ts.get(name)
        return None if value is None else pd.Timestamp(value).tz_localize(None)

    at = pd.Timestamp(now)
    tx = pd.read_parquet(trained.data / "transactions.parquet")
    before = tx[tx["tx_datetime"] < at]
    card = before["customer_id"] == trained.event["customer_id"]
    terminal = before["terminal_id"] == trained.event["terminal_id"]
    assert stamp("customer_count_1h") == before.loc[card, "tx_datetime"].max()
    assert stamp("terminal_count_7d") == before.loc[terminal, "tx_datetime"].max()
    labels = pd.read_parquet(trained.data / "labels.parquet")
    known = tx.merge(labels, on="tx_id")
    known = known[
        (known["terminal_id"] == trained.event["terminal_id"])
        & (known["label_known_at"] < at)
        & (known["tx_datetime"] >= at - pd.Timedelta(days=30))
        & (known["tx_datetime"] < at)
    ]
    assert stamp("terminal_frauds_30d") == known["tx_datetime"].max()
    assert "amount" not in record.feature_ts  # a request field, not enriched

    model = registry.load("fraud", trained.version)
    offline_score = model.predict_batch(offline[trained.features].to_frame().T.astype(float))
    assert body["predictions"][0]["score"] == pytest.approx(float(offline_score[0]), abs=1e-6)
    audit.close()
    registry.close()
    store.close()
