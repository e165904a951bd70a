"""With ``serving.auth = "keys"`` every endpoint wants an API key: of the model's tenant
(another tenant's model is a 404 on every model endpoint, absent from listings and
schemas, and its predictions cannot be labelled), with the endpoint's scope, usable now
and within its rate and its tenant's quota. The embedded default is unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import ServingConfig
from driftloop.core.errors import ConfigError
from driftloop.registry import KeyStore
from driftloop.serving import InMemoryModelSource, ServedModel, create_app, token_digest
from serving_helpers import FEATURES, row

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALL = ["predict", "feedback", "read", "admin"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[KeyStore]:
    store = KeyStore.at(f"sqlite:///{tmp_path / 'registry.db'}")
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tenant_client(
    boosters: dict[str, Any], audit: SqliteAuditLog, keys: KeyStore, clock: Clock
) -> Iterator[Callable[..., TestClient]]:
    """A server with model ``fraud`` of tenant a and ``loans`` of tenant b."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        source = InMemoryModelSource()
        source.add("fraud", "1", boosters["1"], aliases=["champion"])
        source.add("loans", "1", boosters["2"], aliases=["champion"])
        app = create_app(
            [ServedModel("fraud", tenant="a"), ServedModel("loans", tenant="b")],
            source,
            settings=ServingConfig.model_validate({"auth": "keys", **settings}),
            audit=audit,
            keys=keys,
            refresh_s=0,
        )
        app.server.gate.clock = clock  # type: ignore[attr-defined,union-attr]
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _key(keys: KeyStore, tenant: str, scopes: list[str] = ALL, **kw: Any) -> dict[str, str]:
    return bearer(keys.create(tenant, scopes, who="test", **kw)[1])


def _predict(client: TestClient, model: str, headers: dict[str, str]) -> Any:
    return client.post(f"/v1/models/{model}/predict", json={"instances": [row(0)]}, headers=headers)


def _infer(client: TestClient, model: str, headers: dict[str, str]) -> Any:
    values = [row(0)[f] for f in FEATURES]
    tensor = {"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64", "data": values}
    return client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]}, headers=headers)


# -- another tenant's models: 404, absent, not labelled ------------------------------------
MODEL_ENDPOINTS = {
    "predict v1": lambda c, m, h: _predict(c, m, h),
    "predict v1 keyed (checked route)": lambda c, m, h: c.post(
        f"/v1/models/{m}/predict",
        json={"instances": [row(0)]},
        headers={**h, "Idempotency-Key": f"k-{m}"},
    ),
    "v2 infer": _infer,
    "v2 model metadata": lambda c, m, h: c.get(f"/v2/models/{m}", headers=h),
    "v2 model ready": lambda c, m, h: c.get(f"/v2/models/{m}/ready", headers=h),
    "traffic get": lambda c, m, h: c.get(f"/v1/models/{m}/traffic", headers=h),
    "traffic put": lambda c, m, h: c.put(
        f"/v1/models/{m}/traffic", json={"arms": {"champion": 100}}, headers=h
    ),
}


@pytest.mark.parametrize("endpoint", list(MODEL_ENDPOINTS))
def test_a_key_of_tenant_a_gets_404_on_tenant_bs_model_as_if_it_did_not_exist(
    tenant_client: Callable[..., TestClient], keys: KeyStore, endpoint: str
) -> None:
    call = MODEL_ENDPOINTS[endpoint]
    a = _key(keys, "a")
    client = tenant_client()
    theirs, absent = call(client, "loans", a), call(client, "nonesuch", a)
    assert theirs.status_code == 404, theirs.text
    assert absent.status_code == 404
    assert "loans" in theirs.text
    assert "fraud" not in theirs.text  # no list of the models served
    assert call(client, "fraud", a).status_code == 200  # its own model answers


def test_the_model_listing_and_openapi_show_only_the_keys_tenants_models(
    tenant_client: Callable[..., TestClient], keys: KeyStore
) -> None:
    a, b = _key(keys, "a", ["read"]), _key(keys, "b", ["read"])
    client = tenant_client()
    assert [m["name"] for m in client.get("/v1/models", headers=a).json()["models"]] == ["fraud"]
    assert [m["name"] for m in client.get("/v1/models", headers=b).json()["models"]] == ["loans"]
    paths_a = client.get("/openapi.json", headers=a).json()["paths"]
    assert "/v1/models/fraud/predict" in paths_a
    assert "/v1/models/loans/predict" not in paths_a
    assert "loans" not in client.get("/openapi.json", headers=a).text
    assert "/v1/models/loans/predict" in client.get("/openapi.json", headers=b).json()["paths"]


def test_a_key_of_tenant_a_cannot_label_tenant_bs_predictions_which_count_as_unknown(
    tenant_client: Callable[..., TestClient], keys: KeyStore, audit: SqliteAuditLog
) -> None:
    a, b = _key(keys, "a"), _key(keys, "b")
    client = tenant_client()
    (theirs,) = [p["prediction_id"] for p in _predict(client, "loans", b).json()["predictions"]]
    (mine,) = [p["prediction_id"] for p in _predict(client, "fraud", a).json()["predictions"]]
    body = {"labels": [{"prediction_id": theirs, "label": 1}, {"prediction_id": mine, "label": 1}]}
    answer = client.post("/v1/feedback", json=body, headers=a)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1, "unknown_count": 1}  # counted, not named
    assert audit.get(theirs).label is None
    assert audit.get(mine).label == 1.0
    relabel = {"labels": [{"prediction_id": theirs, "label": 0}], "relabel": True}
    assert client.post("/v1/feedback", json=relabel, headers=a).json()["accepted"] == 0
    assert client.post("/v1/feedback", json=relabel, headers=b).json()["accepted"] == 1
    assert audit.get(theirs).label == 0.0


def test_idempotency_keys_are_per_tenant_so_one_never_replays_anothers_answer(
    tenant_client: Callable[..., TestClient], keys: KeyStore
) -> None:
    a, b = _key(keys, "a"), _key(keys, "b")
    client = tenant_client()
    body = {"labels": [{"prediction_id": "x", "label": 1}]}
    first = client.post("/v1/feedback", json=body, headers={**a, "Idempotency-Key": "same"})
    again = client.post("/v1/feedback", json=body, headers={**b, "Idempotency-Key": "same"})
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in again.headers  # b's request ran on its own
    replay = client.post("/v1/feedback", json=body, headers={**a, "Idempotency-Key": "same"})
    assert replay.headers["idempotent-replayed"] == "true"


def test_a_traffic_change_is_recorded_with_the_key_id(
    tenant_client: Callable[..., TestClient], keys: KeyStore
) -> None:
    key, secret = keys.create("a", ["admin"], who="test")
    client = tenant_client()
    answer = client.put(
        "/v1/models/fraud/traffic", json={"arms": {"champion": 100}}, headers=bearer(secret)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed_by"] == f"key:{key.id}"


# -- credentials and scopes ----------------------------------------------------------------
OWN_ENDPOINTS = {
    "predict": lambda c, h: _predict(c, "fraud", h),
    "v2 infer": lambda c, h: _infer(c, "fraud", h),
    "feedback": lambda c, h: c.post(
        "/v1/feedback", json={"labels": [{"prediction_id": "x", "label": 1}]}, headers=h
    ),
    "listing": lambda c, h: c.get("/v1/models", headers=h),
    "v2 metadata": lambda c, h: c.get("/v2/models/fraud", headers=h),
    "v2 server": lambda c, h: c.get("/v2", headers=h),
    "openapi": lambda c, h: c.get("/openapi.json", headers=h),
    "traffic get": lambda c, h: c.get("/v1/models/fraud/traffic", headers=h),
    "traffic put": lambda c, h: c.put(
        "/v1/models/fraud/traffic", json={"arms": {"champion": 100}}, headers=h
    ),
    "metrics": lambda c, h: c.get("/metrics", headers=h),
}
SCOPE_OF = {
    "predict": "predict",
    "v2 infer": "predict",
    "feedback": "feedback",
    "listing": "read",
    "v2 metadata": "read",
    "v2 server": "read",
    "openapi": "read",
    "traffic get": "admin",
    "traffic put": "admin",
    "metrics": "admin",
}


@pytest.mark.parametrize("endpoint", list(OWN_ENDPOINTS))
def test_every_endpoint_wants_a_key_with_its_scope(
    tenant_client: Callable[..., TestClient], keys: KeyStore, endpoint: str
) -> None:
    call, scope = OWN_ENDPOINTS[endpoint], SCOPE_OF[endpoint]
    right = _key(keys, "a", [scope])
    wrong = _key(keys, "a", [s for s in ALL if s != scope])
    client = tenant_client()
    missing = call(client, {})
    assert missing.status_code == 401
    assert "Bearer" in missing.text
    assert call(client, bearer("dlk_guessed")).status_code == 401
    refused = call(client, wrong)
    assert refused.status_code == 403
    assert scope in refused.text
    assert call(client, right).status_code == 200


def test_health_probes_stay_open_for_load_balancers(
    tenant_client: Callable[..., TestClient],
) -> None:
    client = tenant_client()
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):
        assert client.get(path).status_code == 200


def test_revoked_and_expired_keys_are_refused_once_the_server_rereads_them(
    tenant_client: Callable[..., TestClient], keys: KeyStore, clock: Clock
) -> None:
    key, secret = keys.create("a", ["predict"], who="test")
    _, expiring = keys.create("a", ["predict"], who="test", expires_at=T0 + timedelta(hours=1))
    client = tenant_client()
    assert _predict(client, "fraud", bearer(secret)).status_code == 200
    keys.revoke(key.id, who="test")
    client.app.server.gate.refresh()  # type: ignore[attr-defined]  # the poller's job, each 1 s
    revoked = _predict(client, "fraud", bearer(secret))
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "unauthorized"
    assert _predict(client, "fraud", bearer(expiring)).status_code == 200
    clock.now = T0 + timedelta(hours=1)
    assert _predict(client, "fraud", bearer(expiring)).status_code == 401


# -- rate limits and quotas ----------------------------------------------------------------
def test_a_key_past_its_rate_gets_429_with_retry_after_until_the_bucket_refills(
    tenant_client: Callable[..., TestClient], keys: KeyStore, clock: Clock
) -> None:
    limited = _key(keys, "a", ["predict", "read"], rate_per_s=0.5, burst=2)
    other = _key(keys, "a", ["predict"])
    client = tenant_client()
    assert [_predict(client, "fraud", limited).status_code for _ in range(2)] == [200, 200]
    refused = _predict(client, "fraud", limited)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "rate-limited"
    v2 = _infer(client, "fraud", limited)  # the checked routes count against the same bucket
    assert (v2.status_code, v2.json()["code"]) == (429, "rate-limited")
    assert _predict(client, "fraud", other).status_code == 200  # buckets are per key
    clock.now = T0 + timedelta(seconds=2)
    assert _predict(client, "fraud", limited).status_code == 200


def test_a_tenant_past_its_daily_quota_gets_429_until_the_next_utc_day(
    tenant_client: Callable[..., TestClient], keys: KeyStore, clock: Clock
) -> None:
    keys.set_quota("a", 3, who="test")
    first, second = _key(keys, "a", ["predict"]), _key(keys, "a", ["predict"])
    b = _key(keys, "b", ["predict"])
    client = tenant_client()
    codes = [_predict(client, "fraud", k).status_code for k in (first, second, first)]
    assert codes == [200, 200, 200]
    refused = _predict(client, "fraud", second)  # the quota is the tenant's, over its keys
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota-exceeded"
    assert refused.headers["retry-after"] == str(12 * 3600)
    assert _predict(client, "loans", b).status_code == 200
    clock.now = T0 + timedelta(hours=12)
    assert _predict(client, "fraud", first).status_code == 200


# -- configuration ---------------------------------------------------------------------------
def test_keys_without_a_key_store_and_token_auth_without_a_token_refuse_to_start(
    source: InMemoryModelSource,
) -> None:
    with pytest.raises(ConfigError, match="key store"):
        create_app([ServedModel("fraud")], source, settings=ServingConfig(auth="keys"))
    with pytest.raises(ConfigError, match="needs a token"):
        create_app([ServedModel("fraud")], source, settings=ServingConfig(auth="token"))


def test_the_embedded_default_needs_no_key_and_lists_every_model(make_client: Any) -> None:
    client = make_client()
    assert ServingConfig().auth == "none"
    assert client.post("/v1/models/fraud/predict", json={"instances": [row(0)]}).status_code == 200
    names = [m["name"] for m in client.get("/v1/models").json()["models"]]
    assert names == ["fraud", "fraud-challenger"]
    assert client.get("/v2/models/fraud").status_code == 200
    assert client.get("/v2/models/nonesuch").status_code == 404


def test_token_auth_closes_feedback_even_without_a_feedback_token(
    make_client: Any,
) -> None:
    client = make_client(auth="token", admin_token_sha256=token_digest("adm"))
    body = {"labels": [{"prediction_id": "x", "label": 1}]}
    assert client.post("/v1/feedback", json=body).status_code == 401
    assert client.post("/v1/feedback", json=body, headers=bearer("adm")).status_code == 200


# -- shared across workers -------------------------------------------------------------------
def test_two_servers_on_one_registry_grant_a_daily_quota_once_between_them(
    tenant_client: Callable[..., TestClient], keys: KeyStore
) -> None:
    """Each server claims the tenant's requests from the registry's database: together
    they grant the quota, not each of them."""
    keys.set_quota("a", 5, who="test")
    key = _key(keys, "a", ["predict"])
    first, second = tenant_client(), tenant_client()
    codes = [_predict(c, "fraud", key).status_code for _ in range(4) for c in (first, second)]
    assert codes.count(200) == 5
    assert codes.count(429) == 3


def test_a_tenant_whose_audit_records_fill_its_storage_quota_gets_507_naming_it(
    tenant_client: Callable[..., TestClient], keys: KeyStore, clock: Clock
) -> None:
    keys.set_quota("a", None, who="test", max_audit_rows=2)
    a, b = _key(keys, "a", ["predict", "feedback"]), _key(keys, "b", ["predict"])
    client = tenant_client()
    assert [_predict(client, "fraud", a).status_code for _ in range(2)] == [200, 200]
    server = client.app.server  # type: ignore[attr-defined]
    server._audit_rows.clear()  # the count is read again about every second: now
    full = _predict(client, "fraud", a)
    assert full.status_code == 507, full.text
    error = full.json()["error"]
    assert error["code"] == "audit-quota-exceeded"
    assert "max_audit_rows" in error["message"]
    assert _infer(client, "fraud", a).status_code == 507  # v2 too
    assert _predict(client, "loans", b).status_code == 200  # another tenant has room
    body = {"labels": [{"prediction_id": "x", "label": 1}]}
    assert client.post("/v1/feedback", json=body, headers=a).status_code == 200  # no new rows


def test_with_a_redis_rate_limit_store_two_servers_share_each_keys_bucket(
    tenant_client: Callable[..., TestClient], keys: KeyStore, redis_url: str
) -> None:
    limited = _key(keys, "a", ["predict"], rate_per_s=0.01, burst=3)
    first = tenant_client(rate_limit_store=redis_url)
    second = tenant_client(rate_limit_store=redis_url)
    codes = [_predict(c, "fraud", limited).status_code for _ in range(3) for c in (first, second)]
    assert codes.count(200) == 3  # one bucket of 3, not one per server
    refused = _predict(first, "fraud", limited)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
