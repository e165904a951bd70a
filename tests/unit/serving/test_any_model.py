"""Serving models of every task trained on a table with text, boolean, missing and time
columns: typed inputs, the same scores as offline, task outputs, event times, missing and
unseen values under each policy, feedback by class name, and the v2 protocol."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import DecisionPolicy, MissingPolicy, load_settings
from driftloop.registry import Registry
from driftloop.serving import (
    InMemoryFeatureSource,
    RegistryModelSource,
    ServedModel,
    create_app,
)
from driftloop.training import TrainingPipeline
from tabular_world import model_toml, table

INPUTS = ["income", "age", "owns_home", "channel", "region"]


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, pd.DataFrame]]:
    task = request.param
    root = tmp_path_factory.mktemp(task)
    (root / "data").mkdir()
    frame = table(task, rows=2_000, seed=3)
    frame.to_csv(root / "data" / "applications.csv", index=False)
    toml = model_toml(task, name="loans") + 'timestamps = {applied_at = ["hour"]}\n'
    (root / "driftloop.toml").write_text(toml)
    settings = load_settings(root / "driftloop.toml", environ={})
    result = TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 30}).run()
    assert result.version is not None
    registry = Registry.from_settings(settings)
    registry.set_alias("loans", "champion", 1, who="test")
    yield registry, frame
    registry.close()


def client_for(
    registry: Registry, audit: SqliteAuditLog, features: Any = None, **policies: Any
) -> TestClient:
    served = ServedModel(
        "loans",
        entity_keys=("applicant_id",) if features is not None else (),
        decision=DecisionPolicy.model_validate(policies["decision"])
        if "decision" in policies
        else None,
        missing=MissingPolicy.model_validate(policies.get("missing", {})),
    )
    app = create_app([served], RegistryModelSource(registry), audit=audit, features=features)
    return TestClient(app)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


def instance(row: pd.Series, *, with_time: bool = True) -> dict[str, Any]:
    """A table row as a client sends it: JSON numbers, booleans, text, null, the event
    time as ISO 8601 with a Z, and the id."""
    out: dict[str, Any] = {"application_id": row["application_id"]}
    for name in INPUTS:
        value = row[name]
        out[name] = None if pd.isna(value) else value
    if with_time:
        out["applied_at"] = row["applied_at"].isoformat() + "Z"
    out["age"] = int(out["age"])
    return out


def number(prediction: dict[str, Any]) -> float:
    """The one number of an answer: a regression's value, else the score."""
    return float(prediction["value"] if "value" in prediction else prediction["score"])


def test_served_outputs_equal_the_offline_models_and_are_audited_with_event_times(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    model = registry.load("loans", 1)
    rows = frame.iloc[:300]
    offline = model.predict_frame(rows)
    with client_for(registry, audit) as client:
        body = {"instances": [instance(r) for _, r in rows.iterrows()]}
        response = client.post("/v1/models/loans/predict", json=body)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
    task = model.task
    if task == "regression":
        served = [p["value"] for p in predictions]
        np.testing.assert_allclose(served, offline.raw, atol=1e-6)
        assert "score" not in predictions[0]
    elif task == "multiclass":
        probabilities = [[p["probabilities"][c] for c in model.classes] for p in predictions]
        np.testing.assert_allclose(probabilities, offline.raw, atol=1e-6)
        expected = [model.classes[j] for j in offline.class_index]
        assert [p["class"] for p in predictions] == expected
    else:
        np.testing.assert_allclose([p["score"] for p in predictions], offline.raw, atol=1e-6)
    assert all("decision" not in p for p in predictions)  # no policy configured
    assert [p["id"] for p in predictions] == rows["application_id"].tolist()
    nulls = rows[INPUTS].isna().to_numpy()
    for p, row, null in zip(predictions, rows.itertuples(), nulls, strict=True):
        named = {f for f, n in zip(INPUTS, null, strict=True) if n}
        assert set(p.get("missing", [])) == named  # a null is never silent
        record = audit.get(p["prediction_id"])
        assert record.ts == row.applied_at.replace(tzinfo=UTC)  # the event time
        assert record.entity_keys == {"application_id": row.application_id}
        assert record.features["channel"] == row.channel  # categories as their text
        assert record.features["applied_at_hour"] == row.applied_at.hour
        if task != "binary":
            assert record.outputs is not None


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("income", "12", "must be a number or null"),
        ("owns_home", "yes", "must be true, false or null"),
        ("channel", 3.5, "must be a string"),
        ("channel", True, "must be a string"),
        ("applied_at", "yesterday", "ISO 8601"),
        ("repaid", 1, "unknown field"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_422_naming_instance_field_and_rule(
    trained: tuple[Registry, pd.DataFrame],
    audit: SqliteAuditLog,
    field: str,
    value: Any,
    rule: str,
) -> None:
    registry, frame = trained
    good = instance(frame.iloc[0])
    with client_for(registry, audit) as client:
        body = {"instances": [good, {**good, field: value}]}
        response = client.post("/v1/models/loans/predict", json=body)
    assert response.status_code == 422
    violation = response.json()["error"]["violations"][0]
    assert (violation["instance"], violation["field"]) == (1, field)
    assert rule in violation["rule"]
    everything = audit.window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert len(everything) == 0  # nothing of a refused request is scored or audited


def test_an_unseen_category_is_scored_as_null_and_named_or_refused_by_policy(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    row = {**instance(frame.iloc[1]), "region": "atlantis"}
    with client_for(registry, audit) as client:
        answer = client.post("/v1/models/loans/predict", json={"instances": [row]}).json()
    p = answer["predictions"][0]
    assert p["unseen"] == ["region"]
    assert "region" not in p.get("missing", [])
    model = registry.load("loans", 1)
    offline = model.predict_frame(pd.DataFrame([{**row, "region": None}]))
    got = number(p)
    assert got == pytest.approx(float(offline.score[0]), abs=1e-6)
    assert audit.get(p["prediction_id"]).features["region"] == "atlantis"
    with client_for(registry, audit, missing={"unseen": "reject"}) as client:
        response = client.post("/v1/models/loans/predict", json={"instances": [row]})
    assert response.status_code == 422
    assert response.json()["error"]["violations"][0]["field"] == "region"


def test_missing_features_follow_the_policy_flag_reject_or_default(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    model = registry.load("loans", 1)
    full = instance(frame.dropna(subset=INPUTS).iloc[0])
    row = {k: v for k, v in full.items() if k not in ("income", "channel")}
    with client_for(registry, audit) as client:
        p = client.post("/v1/models/loans/predict", json={"instances": [row]}).json()
    flagged = p["predictions"][0]
    assert sorted(flagged["missing"]) == ["channel", "income"]
    assert audit.get(flagged["prediction_id"]).missing == ("income", "channel")
    with client_for(registry, audit, missing={"policy": "reject"}) as client:
        refused = client.post("/v1/models/loans/predict", json={"instances": [full, row]})
    assert refused.status_code == 422
    violation = refused.json()["error"]["violations"][0]
    assert violation["instance"] == 1
    assert set(violation["missing"]) == {"income", "channel"}
    defaults = {"income": 40_000.0, "channel": "web"}
    with client_for(registry, audit, missing={"policy": "default", "defaults": defaults}) as c:
        p = c.post("/v1/models/loans/predict", json={"instances": [row]}).json()
    filled = p["predictions"][0]
    assert sorted(filled["missing"]) == ["channel", "income"]  # still said, though filled
    offline = model.predict_frame(pd.DataFrame([{**row, **defaults}]))
    assert number(filled) == pytest.approx(float(offline.score[0]), 1e-6)
    assert audit.get(filled["prediction_id"]).features["channel"] == "web"


def test_an_entity_the_store_does_not_know_is_flagged_missing(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    store = InMemoryFeatureSource("applicant_id")
    known = frame.iloc[2]
    store.put(7, {"income": 55_000.0, "channel": "app"})
    base = {k: v for k, v in instance(known).items() if k not in ("income", "channel")}
    rows = [{**base, "applicant_id": 7}, {**base, "applicant_id": 8}]
    with client_for(registry, audit, features=store) as client:
        answer = client.post("/v1/models/loans/predict", json={"instances": rows}).json()
    enriched, unknown = answer["predictions"]
    assert "missing" not in enriched or "income" not in enriched["missing"]
    assert sorted(unknown["missing"]) == ["channel", "income"]
    model = registry.load("loans", 1)
    offline = model.predict_frame(pd.DataFrame([{**base, "income": 55_000.0, "channel": "app"}]))
    got = number(enriched)
    assert got == pytest.approx(float(offline.score[0]), abs=1e-6)
    assert audit.get(enriched["prediction_id"]).features["channel"] == "app"


def test_feedback_takes_class_names_or_values_by_the_predictions_model(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    model = registry.load("loans", 1)
    rows = frame.iloc[:3]
    with client_for(registry, audit) as client:
        body = {"instances": [instance(r) for _, r in rows.iterrows()]}
        ids = [p["prediction_id"] for p in client.post(
            "/v1/models/loans/predict", json=body).json()["predictions"]]  # fmt: skip
        truth = rows[model.signature.label or ""].tolist()
        labels = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
        answer = client.post("/v1/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 3, "unknown_count": 0}
        if model.task == "binary":  # 0/1 and true/false work too: 1 is the positive class
            again = [
                {"prediction_id": ids[0], "label": 1},
                {"prediction_id": ids[1], "label": False},
            ]
            relabelled = client.post("/v1/feedback", json={"labels": again, "relabel": True})
            assert relabelled.json()["accepted"] == 2
            seven = [{"prediction_id": ids[2], "label": 7}]  # not a class of a binary model
            assert client.post("/v1/feedback", json={"labels": seven}).status_code == 422
            truth[:2] = [model.classes[1], model.classes[0]]
        if model.task != "regression":
            bad = client.post(
                "/v1/feedback", json={"labels": [{"prediction_id": ids[0], "label": "maybe"}]}
            )
            assert bad.status_code == 422
            assert "classes:" in bad.json()["error"]["violations"][0]["rule"]
    stored = [audit.get(i).label for i in ids]
    if model.task == "regression":
        assert stored == pytest.approx(truth)
    else:
        assert stored == [float(model.classes.index(t)) for t in truth]


def test_decisions_come_from_the_models_policy(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    model = registry.load("loans", 1)
    if model.task == "multiclass":
        pytest.skip("a multiclass model answers with its class")
    cut = float(np.median(model.predict_frame(frame.iloc[:200]).score))
    policy = {"threshold": cut, "labels": ["below", "above"]}
    with client_for(registry, audit, decision=policy) as client:
        body = {"instances": [instance(r) for _, r in frame.iloc[:200].iterrows()]}
        predictions = client.post("/v1/models/loans/predict", json=body).json()["predictions"]
    for p in predictions:
        score = number(p)
        assert p["decision"] == ("above" if score >= cut else "below")
    assert {p["decision"] for p in predictions} == {"below", "above"}


def test_v2_infer_takes_typed_tensors_and_a_request_event_time(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, frame = trained
    model = registry.load("loans", 1)
    rows = [instance(r) for _, r in frame.iloc[:4].iterrows()]
    types = {"income": "FP64", "age": "INT64", "owns_home": "BOOL", "channel": "BYTES",
             "region": "BYTES", "applied_at": "BYTES"}  # fmt: skip
    inputs = [
        {"name": n, "datatype": t, "shape": [4], "data": [r[n] for r in rows]}
        for n, t in types.items()
    ]
    with client_for(registry, audit) as client:
        meta = client.get("/v2/models/loans").json()
        assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
            **types,
            "age": "FP64",
        }
        answer = client.post(
            "/v2/models/loans/infer",
            json={"inputs": inputs, "parameters": {"event_time": "2026-05-01T00:00:00Z"}},
        )
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    offline = model.predict_frame(pd.DataFrame(rows))
    if model.task == "regression":
        np.testing.assert_allclose(outputs["value"]["data"], offline.raw, atol=1e-6)
    else:
        np.testing.assert_allclose(outputs["score"]["data"], offline.score, atol=1e-6)
    if model.task == "multiclass":
        assert outputs["probabilities"]["shape"] == [4, len(model.classes)]
    # the instances' own event times win over the request's
    record = audit.get(outputs["prediction_id"]["data"][0])
    assert record.ts == frame.iloc[0]["applied_at"].replace(tzinfo=UTC)


def test_openapi_types_every_field_of_the_served_version(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, _ = trained
    with client_for(registry, audit) as client:
        document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/models/loans/predict"]["post"]["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = document["components"]["schemas"][name]["properties"]["instances"]["items"]
    properties = fields["properties"]
    assert properties["owns_home"]["type"] == ["boolean", "null"]
    assert properties["income"]["type"] == ["number", "null"]
    assert "north" in properties["region"]["examples"]
    assert "pattern" in properties["applied_at"]  # an ISO 8601 date-time the server takes
    assert "application_id" in properties
    assert fields["additionalProperties"] is False
