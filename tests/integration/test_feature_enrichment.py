"""Enrichment through the feature store's online stores (SQLite and Redis)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.serving import FeatureStoreSource, InMemoryModelSource, ServedModel, create_app
from serving_helpers import FEATURES, card_store, row, train

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def boosters() -> dict[str, Any]:
    return {"1": train(1)}


@pytest.fixture(params=["sqlite", "redis"])
def feature_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = (
        f"sqlite:///{tmp_path / 'online.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    store = card_store(url, tmp_path)
    store.push(
        "card_stats",
        [
            {"card_id": "c1", "ts": T, "count_1d": 3.0, "amount_7d": 250.0},
            {"card_id": "c2", "ts": T, "count_1d": 9.0, "amount_7d": 10.0},
        ],
    )
    yield store
    store.close()


def test_server_enriches_entity_keys_from_the_online_store(
    feature_store: Any, boosters: dict[str, Any], tmp_path: Path
) -> None:
    source = InMemoryModelSource()
    source.add("fraud", "1", boosters["1"], aliases=["champion"])
    audit = SqliteAuditLog(tmp_path / "audit.db")
    app = create_app(
        [ServedModel("fraud", entity_keys=("card_id",))],
        source,
        audit=audit,
        features=FeatureStoreSource(feature_store),
        refresh_s=0,
    )
    inline = {k: v for k, v in row(4).items() if k not in ("count_1d", "amount_7d")}
    with TestClient(app) as client:
        body = client.post(
            "/v1/models/fraud/predict",
            json={"instances": [{**inline, "card_id": "c1"}, {**inline, "card_id": "c2"}]},
        ).json()
    scores = [p["score"] for p in body["predictions"]]
    full = [{**inline, "count_1d": 3.0, "amount_7d": 250.0}, {**inline, "count_1d": 9.0,
            "amount_7d": 10.0}]  # fmt: skip
    expected = boosters["1"].predict(np.array([[r[f] for f in FEATURES] for r in full]))
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    stored = audit.get(body["predictions"][1]["prediction_id"])
    assert stored.features == full[1]
    assert stored.feature_ts["count_1d"] == T
    audit.close()
