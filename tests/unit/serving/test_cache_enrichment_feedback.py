from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from driftloop.audit import SqliteAuditLog
from driftloop.serving import InMemoryFeatureSource
from serving_helpers import FEATURES, row

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _service(client: Any) -> Any:
    return client.app.state.server.by_name["fraud"]


def test_a_repeated_feature_vector_is_served_from_cache_but_still_audited(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    first = client.post("/v1/models/fraud/predict", json={"instances": [row(3)]}).json()
    second = client.post("/v1/models/fraud/predict", json={"instances": [row(3)]}).json()
    assert 'driftloop_batch_rows_count{model="fraud"} 1.0' in client.get("/metrics").text
    p1, p2 = first["predictions"][0], second["predictions"][0]
    assert p1["score"] == p2["score"]
    assert p1["prediction_id"] != p2["prediction_id"]
    assert audit.get(p2["prediction_id"]).score == p2["score"]
    metrics = client.get("/metrics").text
    assert 'driftloop_cache_hit_ratio{model="fraud"} 0.5' in metrics


def test_cache_off_sends_every_request_to_the_model(make_client: Any) -> None:
    client = make_client(cache={"enabled": False})
    service = _service(client)
    for _ in range(3):
        client.post("/v1/models/fraud/predict", json={"instances": [row(3)]})
    assert service.current.batcher.batches == 3


def test_entity_keys_are_enriched_with_feature_values_and_timestamps(
    make_client: Any, store: InMemoryFeatureSource, boosters: dict[str, Any], audit: SqliteAuditLog
) -> None:
    store.put("c1", {"count_1d": 3.0, "amount_7d": 250.0}, T)
    client = make_client()
    request = {k: v for k, v in row(5).items() if k not in ("count_1d", "amount_7d")}
    body = client.post(
        "/v1/models/fraud/predict", json={"instances": [{**request, "card_id": "c1"}]}
    ).json()
    full = {**request, "count_1d": 3.0, "amount_7d": 250.0}
    expected = boosters["1"].predict(np.array([[full[f] for f in FEATURES]]))[0]
    prediction = body["predictions"][0]
    assert prediction["score"] == pytest.approx(expected, abs=1e-6)
    stored = audit.get(prediction["prediction_id"])
    assert stored.entity_keys == {"card_id": "c1"}
    assert stored.features == full
    assert stored.feature_ts == {"count_1d": T, "amount_7d": T}


def test_enriched_requests_bypass_the_cache_unless_configured(
    make_client: Any, store: InMemoryFeatureSource
) -> None:
    store.put("c1", {"count_1d": 1.0, "amount_7d": 2.0}, T)
    request = {**{k: v for k, v in row(5).items() if k != "count_1d"}, "card_id": "c1"}
    client = make_client()
    first = client.post("/v1/models/fraud/predict", json={"instances": [request]}).json()
    store.put("c1", {"count_1d": 50.0}, T)  # the online value moved: the score must follow
    second = client.post("/v1/models/fraud/predict", json={"instances": [request]}).json()
    assert first["predictions"][0]["score"] != second["predictions"][0]["score"]
    cached = make_client(cache={"cache_enriched": True})
    a = cached.post("/v1/models/fraud/predict", json={"instances": [request]}).json()
    store.put("c1", {"count_1d": -50.0}, T)
    b = cached.post("/v1/models/fraud/predict", json={"instances": [request]}).json()
    assert a["predictions"][0]["score"] == b["predictions"][0]["score"]


def test_feedback_attaches_labels_and_reports_unknown_ids(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    body = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}).json()
    pid = body["predictions"][0]["prediction_id"]
    labels = [
        {"prediction_id": pid, "label": 1, "ts": "2026-03-08T00:00:00+00:00"},
        {"prediction_id": "ghost", "label": 0},
    ]
    response = client.post("/v1/feedback", json={"labels": labels})
    assert response.json() == {"accepted": 1, "unknown_count": 1}  # open: no ids named
    assert audit.get(pid).label == 1.0
    bad = client.post("/v1/feedback", json={"labels": [{"prediction_id": pid, "label": "x"}]})
    assert bad.status_code == 422
    assert bad.json()["error"]["violations"][0]["field"] == "label"


def test_metrics_count_requests_predictions_and_batches(make_client: Any) -> None:
    client = make_client()
    client.post("/v1/models/fraud/predict", json={"instances": [row(1), row(2)]})
    client.post("/v1/models/nope/predict", json={"instances": [row(1)]})
    text = client.get("/metrics").text
    assert 'driftloop_predictions_total{model="fraud",version="1"} 2.0' in text
    assert 'driftloop_requests_total{endpoint="predict",status="404"} 1.0' in text
    assert 'driftloop_batch_rows_count{model="fraud"} 1.0' in text
    assert "driftloop_model_info" in text
