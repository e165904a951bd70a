"""Safe releases in the server: canary and A/B arms, the fallback chain behind circuit
breakers, the shadow off the response path, and the admin API that changes them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import FallbackPolicy, MissingPolicy, ServingConfig, TrafficPolicy
from driftloop.registry import TrafficStore
from driftloop.serving import (
    InMemoryFeatureSource,
    InMemoryModelSource,
    ServedModel,
    WorkerBoard,
    create_app,
    token_digest,
)
from driftloop.serving._traffic import Router
from serving_helpers import row

TOKEN = "correct horse battery staple"
ADMIN = {"Authorization": f"Bearer {TOKEN}", "X-Driftloop-Actor": "alice"}
RULES = FallbackPolicy(rules="0.9 if amount > 1.5 else 0.05", default=0.05)


class Broken:
    """A version that loads (its warm-up on an all-missing row works) and then raises on
    every real row: a bad release."""

    def __init__(self, predict: Any) -> None:
        self.predict = predict
        self.calls = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if np.isnan(rows).all():
            return self.predict(rows)  # type: ignore[no-any-return]
        self.calls += 1
        raise RuntimeError("the release is broken")


def broken(source: InMemoryModelSource, version: str) -> Broken:
    model = source.load("fraud", version)
    fake = Broken(model.predict)
    model.predict = fake  # type: ignore[method-assign]
    source.add("fraud", version, model)
    return fake


@pytest.fixture
def traffic(tmp_path: Path) -> Iterator[TrafficStore]:
    store = TrafficStore.at(f"sqlite:///{tmp_path / 'traffic.db'}")
    yield store
    store.close()


@pytest.fixture
def serve(
    source: InMemoryModelSource, audit: SqliteAuditLog, traffic: TrafficStore
) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(
        policy: TrafficPolicy | None = None,
        *,
        fallback: FallbackPolicy | None = RULES,
        features: Any = None,
        missing: MissingPolicy | None = None,
        entity_keys: tuple[str, ...] = (),
        board: WorkerBoard | None = None,
        **settings: Any,
    ) -> TestClient:
        config = ServingConfig.model_validate(
            {
                "cache": {"enabled": False},
                "breaker": {"min_requests": 5, "open_s": 3600},
                "admin_token_sha256": token_digest(TOKEN),
                **settings,
            }
        )
        served = ServedModel(
            "fraud",
            "champion",
            entity_keys,
            fallback=fallback,
            traffic=policy,
            missing=missing or MissingPolicy(),
        )
        app = create_app(
            [served],
            source,
            settings=config,
            audit=audit,
            features=features,
            refresh_s=0,
            traffic=traffic,
            board=board,
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def predict(client: TestClient, instance: dict[str, Any]) -> Any:
    response = client.post("/v1/models/fraud/predict", json={"instances": [instance]})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_broken_challenger_at_a_25pct_canary_fails_no_request(
    serve: Any, source: InMemoryModelSource, audit: SqliteAuditLog
) -> None:
    fake = broken(source, "2")
    client = serve(TrafficPolicy(arms={"champion": 75, "challenger": 25}))
    answers = [predict(client, row(i)) for i in range(300)]  # every one a 200
    routes = [a["route"] for a in answers]
    canary = [r for r in routes if r["arm"] == "challenger"]
    assert 30 < len(canary) < 120  # about a quarter
    # every canary request was answered by the champion, version 1
    assert {(r["link"]) for r in canary} == {"champion"}
    assert {a["version"] for a in answers} == {"1"}
    # the challenger's breaker opened after min_requests failures, and stopped calling it
    assert fake.calls == 5
    assert canary[-1]["breaker"] == "open"
    metrics = client.get("/metrics").text
    assert 'driftloop_breaker_state{model="fraud",target="challenger"} 2.0' in metrics
    assert 'driftloop_arm_errors_total{arm="challenger",model="fraud",version="2"} 5.0' in metrics
    # every answered prediction is in the audit log, under the version that answered it;
    # the canary's, answered by the champion for it, under their own route
    for answer in answers:
        record = audit.get(answer["predictions"][0]["prediction_id"])
        assert record.version == "1"
        assert record.route == ("v1:champion" if answer["route"]["arm"] == "challenger" else "v1")


def test_when_every_version_raises_the_rules_then_the_default_answer(
    serve: Any, source: InMemoryModelSource, audit: SqliteAuditLog
) -> None:
    broken(source, "1")
    client = serve()
    high = predict(client, {**row(1), "amount": 3.0})
    low = predict(client, {**row(1), "amount": -3.0})
    assert high["route"]["link"] == "rules"
    assert high["predictions"][0]["score"] == 0.9
    assert low["predictions"][0]["score"] == 0.05
    assert high["route"]["degraded"] == "fallback"
    record = audit.get(high["predictions"][0]["prediction_id"])
    assert record.route == "v1:rules"
    assert record.score == 0.9
    # once the breaker is open, the model is not called at all: still every answer a 200
    answers = [predict(client, row(i)) for i in range(20)]
    assert {a["route"]["link"] for a in answers} == {"rules"}
    assert answers[-1]["route"]["breaker"] == "open"


def test_without_a_fallback_a_broken_model_answers_503_naming_what_to_declare(
    serve: Any, source: InMemoryModelSource
) -> None:
    broken(source, "1")
    client = serve(fallback=None)
    response = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]})
    assert response.status_code == 503
    assert "[models.fraud.fallback]" in response.json()["error"]["message"]


def test_sticky_arms_keep_a_customer_on_one_version(serve: Any) -> None:
    policy = TrafficPolicy(arms={"champion": 50, "challenger": 50}, sticky_key="customer_id")
    client = serve(policy)
    router = Router(policy, base="champion")
    for customer in range(40):
        key = f"c{customer}"
        versions = {predict(client, {**row(i), "customer_id": key})["version"] for i in range(3)}
        assert versions == {"1" if router.pick(key) == "champion" else "2"}


class Blocking:
    """A shadow version that blocks until released, or raises."""

    def __init__(self, raises: bool = False) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.raises = raises

    def wrap(self, source: InMemoryModelSource, version: str) -> None:
        model = source.load("fraud", version)
        original = model.predict

        def predict(rows: np.ndarray) -> np.ndarray:
            if np.isnan(rows).all():
                return original(rows)
            if self.raises:
                raise RuntimeError("shadow exploded")
            self.entered.set()
            self.release.wait(60)
            return original(rows)

        model.predict = predict  # type: ignore[method-assign]
        source.add("fraud", version, model)


def test_a_hung_shadow_neither_delays_nor_alters_the_answers(
    serve: Any, source: InMemoryModelSource, audit: SqliteAuditLog
) -> None:
    plain = serve()
    expected = [predict(plain, row(i))["predictions"][0]["score"] for i in range(30)]
    shadow = Blocking()
    shadow.wrap(source, "2")
    client = serve(TrafficPolicy(shadow="challenger"), shadow_queue=5)
    answers = [predict(client, row(i)) for i in range(30)]
    # all thirty answered while the shadow is stuck on its first copy: nothing waited on it
    assert shadow.entered.wait(30)
    assert not shadow.release.is_set()
    assert [a["predictions"][0]["score"] for a in answers] == expected
    assert all(a["version"] == "1" and a["route"]["link"] == "model" for a in answers)
    metrics = client.get("/metrics").text
    assert 'outcome="dropped"' in metrics  # the bounded queue overflowed and counted it
    shadow.release.set()
    # the copies that were queued are scored and audited under route shadow, joined by id
    first = answers[0]["predictions"][0]["prediction_id"]
    record = _eventually(lambda: audit.get(f"{first}:shadow"))
    assert record.route == "shadow"
    assert record.version == "2"


def test_a_raising_shadow_is_counted_and_changes_nothing(
    serve: Any, source: InMemoryModelSource
) -> None:
    Blocking(raises=True).wrap(source, "2")
    client = serve(TrafficPolicy(shadow="challenger", shadow_sample=1.0))
    answers = [predict(client, row(i)) for i in range(10)]
    assert all(a["route"]["link"] == "model" for a in answers)
    text = _eventually(lambda: _with(client.get("/metrics").text, 'outcome="failed"'))
    assert 'driftloop_shadow_total{model="fraud",outcome="failed",version="2"}' in text


def test_traffic_changes_need_the_admin_token_and_are_recorded(
    serve: Any, traffic: TrafficStore
) -> None:
    client = serve()
    body = {"arms": {"champion": 90, "challenger": 10}, "reason": "canary v2"}
    url = "/v1/models/fraud/traffic"
    assert client.put(url, json=body).status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert client.put(url, json=body, headers=wrong).status_code == 403
    assert client.get(url, headers=wrong).status_code == 403
    response = client.put(url, json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["source"] == "runtime"
    assert shown["changed_by"] == "alice"
    assert [(a["name"], a["version"], a["weight"]) for a in shown["arms"]] == [
        ("champion", "1", 90.0),
        ("challenger", "2", 10.0),
    ]
    stored = traffic.get("fraud")
    assert stored is not None
    assert stored.changed_by == "alice"
    assert stored.reason == "canary v2"
    versions = {predict(client, row(i))["version"] for i in range(200)}
    assert versions == {"1", "2"}
    # clearing returns to the settings file's policy (none: the champion only)
    cleared = client.put(url, json={"clear": True}, headers=ADMIN).json()
    assert cleared["source"] == "config"
    assert [a["name"] for a in cleared["arms"]] == ["champion"]
    assert [h.policy is None for h in traffic.history("fraud")] == [True, False]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"arms": {"champion": -5}}, "arms"),
        ({"arms": {"nosuchalias": 10}}, None),
        ({"shadow_sample": 2}, "shadow_sample"),
        ({"weights": {}}, "weights"),
    ],
)
def test_a_bad_traffic_change_is_a_422_and_changes_nothing(
    serve: Any, body: dict[str, Any], field: str | None
) -> None:
    client = serve()
    response = client.put("/v1/models/fraud/traffic", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert (field or "nosuchalias") in message
    shown = client.get("/v1/models/fraud/traffic", headers=ADMIN).json()
    assert shown["source"] == "config"
    assert shown["revision"] == 0


def test_a_change_stored_by_another_worker_is_picked_up(serve: Any, traffic: TrafficStore) -> None:
    client = serve()
    traffic.set("fraud", {"arms": {"challenger": 1}}, who="bob", why="all in")
    answer = _eventually(lambda: _when(predict(client, row(1)), lambda a: a["version"] == "2"))
    assert answer["route"]["arm"] == "challenger"
    assert answer["route"]["policy_revision"] >= 1


class Down(InMemoryFeatureSource):
    def __init__(self) -> None:
        super().__init__("card_id")
        self.down = True

    def read(self, entity_rows: Any, features: Any) -> Any:
        if self.down:
            raise ConnectionError("online store is down")
        return super().read(entity_rows, features)


def test_an_online_store_outage_is_answered_by_the_rules_flagged_degraded(
    serve: Any, audit: SqliteAuditLog
) -> None:
    store = Down()
    store.put("k1", {"count_1d": 2.0, "amount_7d": 1.0, "risk": 0.5})
    client = serve(features=store, entity_keys=("card_id",))
    instance = {"amount": 3.0, "hour": 1.0, "card_id": "k1"}
    answer = predict(client, instance)
    assert answer["route"]["link"] == "rules"
    assert answer["route"]["degraded"] == "features-unavailable"
    assert audit.get(answer["predictions"][0]["prediction_id"]).route == "v1:rules"
    # requests that carry every feature never needed the store: answered by the model
    assert predict(client, row(5))["route"]["link"] == "model"
    store.down = False
    client2 = serve(features=store, entity_keys=("card_id",))
    healthy = predict(client2, instance)
    assert healthy["route"]["link"] == "model"
    assert "degraded" not in healthy["route"]


def test_an_online_store_outage_with_declared_defaults_is_scored_by_the_model(
    serve: Any,
) -> None:
    store = Down()
    missing = MissingPolicy(
        policy="default", defaults={"count_1d": 0.0, "amount_7d": 0.0, "risk": 0.0}
    )
    client = serve(features=store, entity_keys=("card_id",), missing=missing)
    answer = predict(client, {"amount": 3.0, "hour": 1.0, "card_id": "k1"})
    assert answer["route"]["link"] == "model"
    assert answer["route"]["degraded"] == "features-unavailable"


def _eventually(probe: Any, attempts: int = 600) -> Any:
    """Poll ``probe`` until it returns without raising (a bound for what never happens)."""
    import time

    error: BaseException | None = None
    for _ in range(attempts):
        try:
            return probe()
        except Exception as exc:
            error = exc
            time.sleep(0.05)
    raise AssertionError(f"never happened: {error}")


def _with(text: str, needle: str) -> str:
    assert needle in text
    return text


def _when(value: Any, check: Any) -> Any:
    assert check(value), value
    return value


def test_rules_that_give_no_answer_without_a_default_are_a_503_not_a_422(
    serve: Any, source: InMemoryModelSource
) -> None:
    broken(source, "1")
    client = serve(fallback=FallbackPolicy(rules="amount / 0"))
    response = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]})
    assert response.status_code == 503
    assert "fallback rules gave no answer" in response.json()["error"]["message"]


def test_concurrent_requests_batched_with_a_broken_arm_all_get_answers(
    serve: Any, source: InMemoryModelSource
) -> None:
    """Requests for both arms share batches: the challenger raising must fail none of the
    champion's requests in the same batch, nor open the champion's breaker."""
    fake = broken(source, "2")
    client = serve(TrafficPolicy(arms={"champion": 50, "challenger": 50}))
    answers: list[tuple[int, Any]] = []

    def load(worker: int) -> None:
        for i in range(40):
            body = {"instances": [row(worker * 100 + i)]}
            response = client.post("/v1/models/fraud/predict", json=body)
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 320
    assert {status for status, _ in answers} == {200}
    assert {a["version"] for _, a in answers} == {"1"}
    assert fake.calls >= 1
    assert all(a["route"]["link"] in ("model", "champion") for _, a in answers)
    metrics = client.get("/metrics").text
    assert 'driftloop_breaker_state{model="fraud",target="champion"} 0.0' in metrics


def test_each_process_tells_the_worker_board_its_arms_breakers_and_failed_calls(
    serve: Any, source: InMemoryModelSource, tmp_path: Path
) -> None:
    """What the dashboard of any worker (or ``driftloop ui``) shows as this process's
    arms: written when a breaker changes, removed when the process stops."""
    board = WorkerBoard(tmp_path / "workers", worker="here")
    broken(source, "2")
    client = serve(TrafficPolicy(arms={"champion": 50, "challenger": 50}), board=board)
    for i in range(60):
        predict(client, row(i))

    def opened() -> list[dict[str, Any]]:
        (report,) = board.read()
        arms: list[dict[str, Any]] = report.models["fraud"]
        assert arms[1]["breaker"] == "open"
        return arms

    champion, challenger = _eventually(opened)
    assert champion == {
        "name": "champion",
        "version": "1",
        "weight": 50.0,
        "breaker": "closed",
        "failed": 0,
        "refused": 0,
    }
    assert (challenger["version"], challenger["weight"]) == ("2", 50.0)
    assert challenger["failed"] == 5  # breaker.min_requests errors opened it
    assert challenger["refused"] > 0  # then the open breaker passed its calls on
    client.__exit__(None, None, None)
    assert board.read() == []  # a process that stops takes its report away
