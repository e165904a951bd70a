"""A retried request with the same Idempotency-Key is answered once: the same prediction
ids, no second audit row, on v1 and v2, across server instances sharing the audit store."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog, idempotency_store
from driftloop.core.config import ServingConfig
from driftloop.serving import InMemoryModelSource, ServedModel, create_app, token_digest
from serving_helpers import FEATURES, row

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PREDICT = "/v1/models/fraud/predict"


def _rows(audit: SqliteAuditLog) -> int:
    with sqlite3.connect(audit.path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_predictions").fetchone()[0])


def _ids(answer: Any) -> list[str]:
    return [p["prediction_id"] for p in answer.json()["predictions"]]


def _key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": name}


def test_a_retried_predict_returns_the_same_ids_and_writes_no_new_rows(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    body = {"instances": [row(1), row(2)]}
    first = client.post(PREDICT, json=body, headers=_key("order-17"))
    assert first.status_code == 200
    assert _rows(audit) == 2
    retry = client.post(PREDICT, json=body, headers=_key("order-17"))
    assert retry.status_code == 200
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert _rows(audit) == 2
    other = client.post(PREDICT, json=body, headers=_key("order-18"))  # another key: new
    assert set(_ids(other)).isdisjoint(_ids(first))
    unkeyed = client.post(PREDICT, json=body)
    assert set(_ids(unkeyed)).isdisjoint(_ids(first))
    assert _rows(audit) == 6


def test_a_retried_v2_infer_returns_the_same_answer_and_writes_no_new_rows(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    rows = [[row(i)[f] for f in FEATURES] for i in range(3)]
    body = {"inputs": [{"name": "input-0", "shape": [3, 5], "datatype": "FP64", "data": rows}]}
    first = client.post("/v2/models/fraud/infer", json=body, headers=_key("batch-9"))
    assert first.status_code == 200, first.text
    retry = client.post("/v2/models/fraud/infer", json=body, headers=_key("batch-9"))
    assert retry.json() == first.json()  # the request id made for it too
    assert _rows(audit) == 3
    changed = {"inputs": [{**body["inputs"][0], "data": rows[::-1]}]}
    reused = client.post("/v2/models/fraud/infer", json=changed, headers=_key("batch-9"))
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.json()["error"]  # the v2 error shape


def test_the_same_key_with_another_body_is_422_naming_the_header(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    client.post(PREDICT, json={"instances": [row(1)]}, headers=_key("k"))
    reused = client.post(PREDICT, json={"instances": [row(2)]}, headers=_key("k"))
    assert reused.status_code == 422
    error = reused.json()["error"]
    assert error["code"] == "idempotency-key-reused"
    assert error["violations"][0]["field"] == "Idempotency-Key"
    assert _rows(audit) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9".encode()])
def test_a_malformed_key_is_refused_naming_the_header(make_client: Any, key: str | bytes) -> None:
    answer = make_client().post(
        PREDICT, json={"instances": [row(1)]}, headers={"Idempotency-Key": key}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["violations"][0]["field"] == "Idempotency-Key"


def test_a_failed_request_releases_its_key_so_the_corrected_retry_runs(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    bad = client.post(PREDICT, json={"instances": [{"amount": "lots"}]}, headers=_key("k"))
    assert bad.status_code == 422
    fixed = client.post(PREDICT, json={"instances": [row(1)]}, headers=_key("k"))
    assert fixed.status_code == 200
    assert _rows(audit) == 1


def test_a_retry_while_the_first_request_runs_is_409(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    raw = orjson.dumps({"instances": [row(1)]})
    keys = idempotency_store(audit)
    assert keys is not None
    digest = hashlib.sha256(raw).hexdigest()
    now = datetime.now(UTC)
    assert keys.claim(PREDICT, "k", digest, now=now, ttl_s=60, lease_s=60).state == "new"
    busy = client.post(
        PREDICT, content=raw, headers={**_key("k"), "content-type": "application/json"}
    )
    assert busy.status_code == 409
    assert "in progress" in busy.json()["error"]["violations"][0]["rule"]
    assert _rows(audit) == 0


def test_keys_expire_after_the_configured_time(make_client: Any, audit: SqliteAuditLog) -> None:
    client = make_client(idempotency_ttl_s=60)
    server = client.app.state.server
    server.clock = lambda: T
    body = {"instances": [row(1)]}
    first = _ids(client.post(PREDICT, json=body, headers=_key("k")))
    server.clock = lambda: T + timedelta(seconds=59)
    assert _ids(client.post(PREDICT, json=body, headers=_key("k"))) == first
    server.clock = lambda: T + timedelta(seconds=61)
    assert _ids(client.post(PREDICT, json=body, headers=_key("k"))) != first
    assert _rows(audit) == 2


@pytest.fixture
def second_instance(source: InMemoryModelSource, audit: SqliteAuditLog) -> Iterator[TestClient]:
    """Another server (another worker, or the same one restarted) on the same SQLite file."""
    log = SqliteAuditLog(audit.path)
    app = create_app(
        [ServedModel("fraud", "champion")],
        source,
        settings=ServingConfig(feedback_token_sha256=token_digest("fb")),
        audit=log,
        refresh_s=0,
    )
    with TestClient(app) as client:
        yield client
    log.close()


def test_two_instances_sharing_one_audit_file_answer_a_key_once(
    make_client: Any, second_instance: TestClient, audit: SqliteAuditLog
) -> None:
    first = make_client()
    body = {"instances": [row(4)]}
    answered = first.post(PREDICT, json=body, headers=_key("shared"))
    retried = second_instance.post(PREDICT, json=body, headers=_key("shared"))
    assert retried.status_code == 200
    assert _ids(retried) == _ids(answered)
    assert _rows(audit) == 1


def test_a_feedback_retry_is_answered_once_and_never_to_a_caller_without_the_token(
    second_instance: TestClient, audit: SqliteAuditLog
) -> None:
    client = second_instance
    (pid,) = _ids(client.post(PREDICT, json={"instances": [row(1)]}))
    body = {"labels": [{"prediction_id": pid, "label": 1}, {"prediction_id": "nope", "label": 0}]}
    token = {"Authorization": "Bearer fb", **_key("fb-1")}
    first = client.post("/v1/feedback", json=body, headers=token)
    assert first.json() == {"accepted": 1, "unknown_count": 1, "unknown": ["nope"]}
    assert client.post("/v1/feedback", json=body, headers=_key("fb-1")).status_code == 401
    retry = client.post("/v1/feedback", json=body, headers=token)
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert audit.get(pid).label == 1.0


def test_a_keyed_request_is_503_not_500_while_the_store_cannot_check_its_key(
    make_client: Any, audit: SqliteAuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    keys = client.app.state.server.keys

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(keys, "claim", locked)
    answer = client.post(PREDICT, json={"instances": [row(1)]}, headers=_key("k"))
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert client.post(PREDICT, json={"instances": [row(1)]}).status_code == 200  # unkeyed
    assert _rows(audit) == 1
