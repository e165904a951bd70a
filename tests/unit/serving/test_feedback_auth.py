"""Feedback takes a credential when one is configured, tells no stranger which ids exist,
and never replaces a label silently: a relabel is asked for and audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from driftloop.audit import SqliteAuditLog, label_store
from driftloop.serving import token_digest
from serving_helpers import row

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEEDBACK, ADMIN = "fb-secret", "admin-secret"
BEARER = {"Authorization": f"Bearer {FEEDBACK}"}


def _predict(client: Any, n: int = 1) -> list[str]:
    body = {"instances": [row(i) for i in range(n)]}
    answer = client.post("/v1/models/fraud/predict", json=body).json()
    return [p["prediction_id"] for p in answer["predictions"]]


def _guarded(make_client: Any) -> Any:
    return make_client(
        feedback_token_sha256=token_digest(FEEDBACK), admin_token_sha256=token_digest(ADMIN)
    )


def test_feedback_without_the_configured_token_is_401_and_with_a_wrong_one_403(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = _guarded(make_client)
    (pid,) = _predict(client)
    body = {"labels": [{"prediction_id": pid, "label": 1}]}
    missing = client.post("/v1/feedback", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403
    assert audit.get(pid).label is None  # neither stored anything
    assert client.post("/v1/feedback", json=body, headers=BEARER).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN}"}  # the admin token may send feedback too
    assert client.post("/v1/feedback", json=body, headers=admin).status_code == 200
    assert audit.get(pid).label == 1.0


def test_open_feedback_counts_unknown_ids_but_names_them_only_to_a_credential(
    make_client: Any,
) -> None:
    open_client = make_client()
    (pid,) = _predict(open_client)
    guesses = [{"prediction_id": g, "label": 0} for g in ("guess-1", "guess-2")]
    body = {"labels": [{"prediction_id": pid, "label": 1}, *guesses]}
    assert open_client.post("/v1/feedback", json=body).json() == {
        "accepted": 1,
        "unknown_count": 2,
    }
    guarded = _guarded(make_client)
    answer = guarded.post("/v1/feedback", json=body, headers=BEARER).json()
    assert answer == {"accepted": 1, "unknown_count": 2, "unknown": ["guess-1", "guess-2"]}


def test_a_different_label_is_refused_with_409_naming_the_id_and_nothing_is_stored(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = make_client()
    first, second = _predict(client, 2)
    labelled = {"labels": [{"prediction_id": first, "label": 1}]}
    assert client.post("/v1/feedback", json=labelled).status_code == 200
    assert client.post("/v1/feedback", json=labelled).json()["accepted"] == 1  # same: fine
    both = {"labels": [{"prediction_id": second, "label": 1}, {"prediction_id": first, "label": 0}]}
    refused = client.post("/v1/feedback", json=both)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "conflict"
    assert first in error["message"]
    assert "relabel" in error["message"]
    assert [(v["instance"], v["prediction_id"]) for v in error["violations"]] == [(1, first)]
    assert (audit.get(first).label, audit.get(second).label) == (1.0, None)


def test_a_relabel_asked_for_with_the_credential_is_applied_and_audited(
    make_client: Any, audit: SqliteAuditLog
) -> None:
    client = _guarded(make_client)
    client.app.state.server.clock = lambda: T
    (pid,) = _predict(client)
    client.post("/v1/feedback", json={"labels": [{"prediction_id": pid, "label": 1}]},
                headers=BEARER)  # fmt: skip
    change = {"labels": [{"prediction_id": pid, "label": 0}], "relabel": True}
    who = {**BEARER, "X-Driftloop-Actor": "alice@risk"}
    answer = client.post("/v1/feedback", json=change, headers=who)
    assert answer.status_code == 200, answer.text
    assert answer.json()["relabelled"] == 1
    assert audit.get(pid).label == 0.0
    store = label_store(audit)
    assert store is not None
    assert [(r.old_label, r.new_label, r.actor, r.ts) for r in store.relabels(pid)] == [
        (1.0, 0.0, "alice@risk", T)
    ]
    unnamed = {"labels": [{"prediction_id": pid, "label": 1}], "relabel": True}
    client.post("/v1/feedback", json=unnamed, headers=BEARER)
    assert [r.actor for r in store.relabels(pid)] == ["alice@risk", "feedback"]


@pytest.mark.parametrize("relabel", ["yes", 1, None])
def test_relabel_must_be_a_boolean(make_client: Any, relabel: Any) -> None:
    client = make_client()
    (pid,) = _predict(client)
    body = {"labels": [{"prediction_id": pid, "label": 1}], "relabel": relabel}
    answer = client.post("/v1/feedback", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["violations"][0]["field"] == "relabel"


class _OtherBackend:
    """An audit log of another kind (not driftloop's SQL one): the protocol only."""

    def __init__(self, log: SqliteAuditLog) -> None:
        self.log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


def test_a_log_without_relabel_history_still_takes_labels_but_never_relabels(
    source: Any, audit: SqliteAuditLog
) -> None:
    from starlette.testclient import TestClient

    from driftloop.serving import ServedModel, create_app

    app = create_app([ServedModel("fraud")], source, audit=_OtherBackend(audit), refresh_s=0)
    with TestClient(app) as client:
        (pid,) = _predict(client)
        first = {"labels": [{"prediction_id": pid, "label": 1}, {"prediction_id": "x", "label": 0}]}
        assert client.post("/v1/feedback", json=first).json() == {
            "accepted": 1,
            "unknown_count": 1,
        }
        change = {"labels": [{"prediction_id": pid, "label": 0}]}
        assert client.post("/v1/feedback", json=change).status_code == 409
        refused = client.post("/v1/feedback", json={**change, "relabel": True})
        assert refused.status_code == 422
        assert "no relabel history" in refused.json()["error"]["message"]
    assert audit.get(pid).label == 1.0
