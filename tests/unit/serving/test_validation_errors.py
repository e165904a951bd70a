from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.serving import _v1
from serving_helpers import row

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "instance", "field", "rule"),
    [
        ({"instances": [{**row(0), "amount": "12"}]}, 0, "amount", "must be a number or null"),
        ({"instances": [row(0), {**row(1), "hour": True}]}, 1, "hour", "must be a number"),
        ({"instances": [row(0), {**row(1), "colour": 1}]}, 1, "colour", "unknown field"),
        ({"instances": [{**row(0), "card_id": [1]}]}, 0, "card_id", "entity key"),
        (  # as many fields as features, one of them unknown: not taken as a numeric row
            {"instances": [row(0), {**{k: v for k, v in row(1).items() if k != "risk"}, "x": 1}]},
            1,
            "x",
            "unknown field",
        ),
        ({"instances": [5]}, 0, None, "must be an object"),
    ],
)
def test_bad_instances_get_422_naming_instance_field_and_rule(
    make_client: Any, body: dict[str, Any], instance: int, field: str | None, rule: str
) -> None:
    response = make_client().post("/v1/models/fraud/predict", json=body)
    assert response.status_code == 422
    violation = response.json()["error"]["violations"][0]
    assert violation["instance"] == instance
    assert violation["field"] == field
    assert rule in violation["rule"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 422, "instances"),
        (b'{"instances": []}', 422, "non-empty"),
        (b'{"instances": [{}], "extra": 1}', 422, "unknown field"),
        (b'{"instances": [{}], "options": {"explain": "yes"}}', 422, "options.explain"),
        (b'{"instances": [{}], "options": {"top_k": 99}}', 422, "options.top_k"),
    ],
)
def test_malformed_bodies_are_refused_with_a_json_reason(
    make_client: Any, body: bytes, status: int, needle: str
) -> None:
    response = make_client().post("/v1/models/fraud/predict", content=body, headers=JSON)
    assert response.status_code == status
    assert needle in response.text


def test_too_many_instances_and_too_large_bodies_are_refused(make_client: Any) -> None:
    client = make_client(max_instances=3, max_body_bytes=2048)
    many = client.post("/v1/models/fraud/predict", json={"instances": [row(i) for i in range(4)]})
    assert many.status_code == 422
    assert "at most 3" in many.json()["error"]["message"]
    big = client.post("/v1/models/fraud/predict", content=b" " * 4096, headers=JSON)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "body-too-large"
    assert "serving.max_body_bytes" in big.json()["error"]["message"]  # the setting to raise


def test_unknown_model_is_404_without_listing_the_served_ones(make_client: Any) -> None:
    response = make_client().post("/v1/models/nope/predict", json={"instances": [row(0)]})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "nope" in message
    assert "fraud" not in message  # an unauthenticated caller learns nothing of the others


def test_openapi_describes_every_route(make_client: Any) -> None:
    client = make_client()
    spec = client.get("/openapi.json").json()
    recommend = {"/v1/models/{name}/recommend", "/v1/models/{name}/interactions"}
    routes = {r.path for r in client.app.routes} - {"/v1/models/{name}/predict"} - recommend
    names = ("fraud", "fraud@champion", "fraud-challenger", "fraud@challenger")
    served = {f"/v1/models/{name}/predict" for name in names}
    assert routes | served == set(spec["paths"])  # one typed predict path per model name
    # no recommender served: its two paths would answer 404 to every name, so are left out


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/models/fraud/predict", {"instances": [{"amount": 1.0, "card_id": "a\x00b"}]},
         "card_id"),
        ("/v1/feedback", {"labels": [{"prediction_id": "x" * 300, "label": 1}]}, "prediction_id"),
    ],
)  # fmt: skip
def test_values_no_backend_could_store_are_refused_not_crashed_on(
    make_client: Any, path: str, body: dict[str, Any], field: str
) -> None:
    response = make_client().post(path, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["violations"][0]["field"] == field


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/fraud/predict", {"instances": [{**row(0), "amount": 10**400}]}),
        ("/v1/feedback", {"labels": [{"prediction_id": "p", "label": 10**400}]}),
    ],
)
def test_numbers_beyond_double_range_are_a_400_not_a_500(
    make_client: Any, path: str, body: dict[str, Any]
) -> None:
    response = make_client().post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "body-invalid"


def test_an_unexpected_failure_is_a_500_json_and_the_server_keeps_serving(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predict fast path bypasses Starlette's error middleware: it must still answer."""
    client = make_client()
    plain = TestClient(client.app, raise_server_exceptions=False)

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(_v1, "parse_instances", broken)
    response = plain.post("/v1/models/fraud/predict", json={"instances": [row(0)]})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    monkeypatch.undo()
    assert client.post("/v1/models/fraud/predict", json={"instances": [row(0)]}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'driftloop_requests_total{endpoint="predict",status="500"} 1.0' in metrics


def test_other_methods_on_the_predict_path_still_get_starlettes_405(make_client: Any) -> None:
    assert make_client().get("/v1/models/fraud/predict").status_code == 405


def test_an_instance_that_is_not_an_object_is_said_so_without_a_field(make_client: Any) -> None:
    response = make_client().post("/v1/models/fraud/predict", json={"instances": [[1, 2, 3]]})
    assert response.status_code == 422
    assert "instance 0 must be an object" in response.json()["error"]["message"]
