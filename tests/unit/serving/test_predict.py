from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftloop.audit import SqliteAuditLog
from serving_helpers import FEATURES, row


def test_predict_answers_each_instance_and_audits_it_before_responding(
    make_client: Any, boosters: dict[str, Any], audit: SqliteAuditLog
) -> None:
    client = make_client()
    instances = [row(i) for i in range(5)]
    response = client.post("/v1/models/fraud/predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("fraud", "1")
    expected = boosters["1"].predict(np.array([[r[f] for f in FEATURES] for r in instances]))
    scores = [p["score"] for p in body["predictions"]]
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    for p, instance in zip(body["predictions"], instances, strict=True):
        stored = audit.get(p["prediction_id"])
        assert stored.score == p["score"]
        assert "decision" not in p  # no policy: no decision
        assert stored.decision == ""
        assert stored.features == instance
        assert (stored.model, stored.version, stored.route) == ("fraud", "1", "v1")


def test_decisions_follow_the_models_policy_and_are_audited(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    bands = {"bands": [0.3, 0.7], "labels": ["low", "mid", "high"]}
    client = make_client(decision=bands)
    instances = [row(i) for i in range(40)]
    body = client.post("/v1/models/fraud/predict", json={"instances": instances}).json()
    for p in body["predictions"]:
        expected = "low" if p["score"] < 0.3 else "mid" if p["score"] < 0.7 else "high"
        assert p["decision"] == expected
        assert audit.get(p["prediction_id"]).decision == expected
    assert {p["decision"] for p in body["predictions"]} == {"low", "mid", "high"}


def test_explanations_are_the_top_k_tree_shap_contributions(
    make_client: Any, boosters: dict[str, Any]
) -> None:
    client = make_client()
    instance = row(7)
    body = client.post(
        "/v1/models/fraud/predict",
        json={"instances": [instance], "options": {"explain": True, "top_k": 2}},
    ).json()
    explanation = body["predictions"][0]["explanation"]
    x = np.array([[instance[f] for f in FEATURES]])
    contrib = boosters["1"].predict(x, pred_contrib=True)[0][:-1]
    top = np.argsort(-np.abs(contrib))[:2]
    assert explanation == pytest.approx({FEATURES[j]: contrib[j] for j in top})


def test_a_model_is_reachable_by_name_alias_and_public_name(make_client: Any) -> None:
    client = make_client()
    for name, version in [("fraud", "1"), ("fraud@challenger", "2"), ("fraud-challenger", "2")]:
        body = client.post(f"/v1/models/{name}/predict", json={"instances": [row(1)]}).json()
        assert body["version"] == version
    models = client.get("/v1/models").json()["models"]
    assert {m["name"]: m["version"] for m in models} == {"fraud": "1", "fraud-challenger": "2"}


def test_an_alias_change_is_followed_without_restart_or_failed_request(
    make_client: Any, source: Any, boosters: dict[str, Any]
) -> None:
    client = make_client()
    server = client.app.state.server
    assert (
        client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}).json()["version"]
        == "1"
    )
    source.set_alias("fraud", "champion", "2")
    client.portal.call(server.refresh_all)
    body = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}).json()
    assert body["version"] == "2"
    x = np.array([[row(1)[f] for f in FEATURES]])
    assert body["predictions"][0]["score"] == pytest.approx(boosters["2"].predict(x)[0], abs=1e-6)


def test_a_broken_alias_keeps_the_version_being_served(make_client: Any, source: Any) -> None:
    client = make_client()
    source.set_alias("fraud", "champion", "404")
    client.portal.call(client.app.state.server.refresh_all)
    response = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]})
    assert response.status_code == 200
    assert response.json()["version"] == "1"
