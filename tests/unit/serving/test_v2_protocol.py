"""The Open Inference Protocol (KServe v2) surface answers as KServe clients expect."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftloop.audit import SqliteAuditLog
from serving_helpers import FEATURES, row


def test_health_and_model_readiness(make_client: Any) -> None:
    client = make_client()
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}
    assert client.get("/v2/models/nope/ready").status_code == 404
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_model_metadata_shows_inputs_outputs_and_the_chosen_runtime(make_client: Any) -> None:
    meta = make_client(decision={"threshold": 0.5, "labels": ["ok", "flag"]})
    meta = meta.get("/v2/models/fraud").json()
    assert meta["name"] == "fraud"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == [*FEATURES, "card_id"]
    assert [o["name"] for o in meta["outputs"]] == ["score", "decision", "prediction_id"]
    assert meta["parameters"]["runtime"] in ("onnxruntime", "lightgbm")
    assert meta["parameters"]["runtime_reason"]
    assert meta["platform"] == f"driftloop-{meta['parameters']['runtime']}"


def test_infer_with_one_matrix_tensor(
    make_client: Any, boosters: dict[str, Any], audit: SqliteAuditLog
) -> None:
    rows = [[row(i)[f] for f in FEATURES] for i in range(3)]
    body = {
        "id": "req-1",
        "inputs": [{"name": "input-0", "shape": [3, 5], "datatype": "FP32", "data": rows}],
    }
    response = make_client().post("/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["model_name"], out["model_version"], out["id"]) == ("fraud", "1", "req-1")
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["score"]["shape"] == [3]
    np.testing.assert_allclose(
        by_name["score"]["data"], boosters["1"].predict(np.array(rows)), atol=1e-6
    )
    assert audit.get(by_name["prediction_id"]["data"][0]).route == "v2"


def test_infer_with_one_tensor_per_feature(make_client: Any, boosters: dict[str, Any]) -> None:
    rows = [row(i) for i in range(2)]
    inputs = [
        {"name": f, "shape": [2], "datatype": "FP64", "data": [r[f] for r in rows]}
        for f in FEATURES
    ]
    out = make_client().post("/v2/models/fraud/infer", json={"inputs": inputs}).json()
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    np.testing.assert_allclose(out["outputs"][0]["data"], boosters["1"].predict(x), atol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ([{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "[n, 5]"),
        ([{"name": "x", "shape": [2, 5], "datatype": "FP32", "data": [1, 2]}], "needs 10"),
        ([{"name": "amount", "shape": [1], "datatype": "COMPLEX", "data": [1]}], "datatype"),
        ("nope", "inputs"),
    ],
)
def test_bad_infer_requests_get_a_v2_error_string(
    make_client: Any, inputs: Any, needle: str
) -> None:
    response = make_client().post("/v2/models/fraud/infer", json={"inputs": inputs})
    assert response.status_code == 422
    assert needle in response.json()["error"]
