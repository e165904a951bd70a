"""Input that used to answer 500 (and log a traceback each time) is a 4xx JSON naming
what is wrong; nothing is scored or audited before it is refused; every answer is
counted; errors echo nothing unbounded and leak no internals."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.errors import BackendUnavailableError
from driftloop.serving import InMemoryModelSource, ServedModel, _v1, create_app
from serving_helpers import FEATURES, row, train

pytestmark = pytest.mark.reliability

JSON = {"content-type": "application/json"}
PREDICT, INFER, FEEDBACK = "/v1/models/fraud/predict", "/v2/models/fraud/infer", "/v1/feedback"


@pytest.fixture(scope="module")
def booster() -> Any:
    return train(1)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


@pytest.fixture
def client(booster: Any, audit: SqliteAuditLog) -> Iterator[TestClient]:
    source = InMemoryModelSource()
    source.add("fraud", "1", booster, aliases=["champion"])
    app = create_app([ServedModel("fraud")], source, audit=audit, refresh_s=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def dumps(value: Any) -> bytes:
    """JSON of any depth (orjson stops at 255, the standard library at the recursion
    limit)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        return json.dumps(value).encode()
    finally:
        sys.setrecursionlimit(limit)


def matrix(n: int = 1) -> dict[str, Any]:
    data = [[row(i)[f] for f in FEATURES] for i in range(n)]
    return {"name": "x", "shape": [n, len(FEATURES)], "datatype": "FP64", "data": data}


def recorded(audit: SqliteAuditLog) -> int:
    return len(audit.window(datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)))


def metric(client: TestClient, endpoint: str, status: int) -> float:
    want = f'driftloop_requests_total{{endpoint="{endpoint}",status="{status}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(want):
            return float(line[len(want) :])
    return 0.0


# (name, path, body, status, what the error must name) -- each answered 500 before
NASTY: list[tuple[str, str, Any, int, str]] = [
    ("echoed value 300 deep", PREDICT, {"instances": [{**row(1), "amount": nested(300)}]},
     400, "limit is 32"),
    ("echoed value 28 deep", PREDICT, {"instances": [{**row(1), "amount": nested(28)}]},
     422, "amount"),
    ("v2 data 900 deep", INFER,
     {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": nested(900)}]},
     400, "limit is 32"),
    ("v2 data 28 deep", INFER,
     {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": nested(28)}]},
     422, "inputs.data"),
    ("v2 id 300 deep", INFER, {"id": nested(300, "x"), "inputs": [matrix()]}, 400, "limit"),
    ("v2 id nested", INFER, {"id": {"a": [1]}, "inputs": [matrix()]}, 422, "id"),
    ("v2 id a number", INFER, {"id": 7, "inputs": [matrix()]}, 422, "id"),
    ("event time year 1", PREDICT,
     {"instances": [row(1)], "event_time": "0001-01-01T00:00:00+05:00"}, 422, "event_time"),
    ("event time year 9999", PREDICT,
     {"instances": [row(1)], "event_time": "9999-12-31T23:59:59-05:00"}, 422, "event_time"),
    ("instance event time year 1", PREDICT,
     {"instances": [{**row(1), "event_time": "0001-01-01T00:00:00Z"}]}, 422, "event_time"),
    ("a 100 kB key", PREDICT, {"instances": [{**row(1), "k" * 100_000: 1}]}, 422, "unknown"),
    ("a 100 kB value", PREDICT, {"instances": [{**row(1), "amount": "v" * 100_000}]}, 422,
     "amount"),
    ("v2 datatype an object (found by fuzzing)", INFER,
     {"inputs": [{"name": "", "shape": [0], "datatype": {}, "data": [None]}]}, 422,
     "datatype"),
    ("bracket soup", PREDICT, b"[" * 100_000, 400, "limit is 32"),
    ("not JSON", PREDICT, b"{'instances': }", 400, "not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"), [n[1:] for n in NASTY], ids=[n[0] for n in NASTY]
)
def test_nasty_input_is_a_4xx_json_naming_the_problem(
    client: TestClient, audit: SqliteAuditLog, path: str, body: Any, status: int, needle: str
) -> None:
    raw = body if isinstance(body, bytes) else dumps(body)
    response = client.post(path, content=raw, headers=JSON)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    text = payload["error"] if path == INFER else json.dumps(payload["error"])
    assert needle in text
    assert len(response.content) < 5_000  # nothing unbounded echoed back
    assert recorded(audit) == 0  # refused before scoring: a retry cannot duplicate a row


@pytest.mark.parametrize(
    "ts", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00", 1e300]
)
def test_a_label_time_out_of_range_is_422_naming_ts(client: TestClient, ts: Any) -> None:
    prediction = client.post(PREDICT, json={"instances": [row(1)]}).json()
    pid = prediction["predictions"][0]["prediction_id"]
    response = client.post(
        FEEDBACK, json={"labels": [{"prediction_id": pid, "label": 1, "ts": ts}]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["violations"][0]["field"] == "ts"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=latin-1", "application/jsonp"],
)  # fmt: skip
@pytest.mark.parametrize("path", [PREDICT, INFER, FEEDBACK])
def test_a_body_not_declared_json_is_415_and_never_scored(
    client: TestClient, audit: SqliteAuditLog, path: str, content_type: str | None
) -> None:
    """A cross-site form or text/plain POST needs no CORS preflight: refused unread."""
    body = {"instances": [row(1)]} if path == PREDICT else {"inputs": [matrix()]}
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=json.dumps(body), headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/json"
    assert recorded(audit) == 0


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=UTF-8"])
def test_json_with_or_without_a_utf8_charset_is_accepted(
    client: TestClient, content_type: str
) -> None:
    body = json.dumps({"instances": [row(1)]})
    assert client.post(PREDICT, content=body, headers={"content-type": content_type}).is_success


def test_every_answer_is_counted_whatever_the_path(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.get("/no/such/path")
    client.delete("/v1/feedback")
    client.post(PREDICT, content=b"{}", headers={"content-type": "text/plain"})
    client.post(INFER, content=b"[" * 100, headers=JSON)
    client.post("/v1/models/nope/predict", json={"instances": [row(1)]})

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(_v1, "predict_payload", boom)
    assert client.post(PREDICT, json={"instances": [row(1)]}).status_code == 500
    assert metric(client, "unrouted", 404) == 1
    assert metric(client, "unrouted", 405) == 1
    assert metric(client, "predict", 415) == 1
    assert metric(client, "infer", 400) == 1
    assert metric(client, "predict", 404) == 1
    assert metric(client, "predict", 500) == 1


def test_a_flood_of_failures_logs_one_traceback_then_one_line_a_minute(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("x" * 1_000_000)  # a huge message, too

    monkeypatch.setattr(_v1, "predict_payload", boom)
    with caplog.at_level(logging.ERROR):
        for _ in range(200):
            response = client.post(PREDICT, json={"instances": [row(1)]})
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "internal"
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(records) == 1
    assert len(records[0].getMessage()) < 10_000
    assert metric(client, "predict", 500) == 200


def test_a_backend_failure_does_not_show_its_url(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailableError(
            "Audit log database at postgresql://app:s3cret@db.internal:5432/audit failed"
        )

    monkeypatch.setattr(_v1, "predict_payload", down)
    response = client.post(PREDICT, json={"instances": [row(1)]})
    assert response.status_code == 503
    assert "postgresql" not in response.text
    assert "s3cret" not in response.text
    assert "unavailable" in response.json()["error"]["message"]


def test_an_unknown_model_or_bad_json_reveals_no_internals(client: TestClient) -> None:
    missing = client.post("/v1/models/other/predict", json={"instances": [row(1)]})
    assert missing.status_code == 404
    assert "fraud" not in missing.text  # the served models are not listed
    for path in (INFER, "/v2/models/other/ready"):
        assert "fraud" not in client.get(path.replace("fraud", "other")).text
    bad = client.post(PREDICT, content=b'{"instances": [tru', headers=JSON)
    assert bad.json()["error"]["message"] == "The body is not valid JSON (line 1, column 19)."
