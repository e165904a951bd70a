"""Cross-tenant access is refused on every endpoint: a key of tenant A can neither predict
with, read, list, label, relabel nor change anything of tenant B's. Every route of the
model server and of the dashboard is in a table here with what it must answer A about
B's things (404: never reveal that they exist; 403; or a listing without them), and a
guard fails when a route is added without a line in that table."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import pandas as pd
import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from driftloop.audit import AuditRecord, SqliteAuditLog, open_audit_log
from driftloop.core.config import ServingConfig, load_settings
from driftloop.features import Entity, FeatureStore, FeatureView, Field
from driftloop.registry import KeyStore, Registry, Signature
from driftloop.serving import InMemoryModelSource, ServedModel, create_app
from driftloop.ui import standalone_ui
from driftloop.ui._access import csrf_of
from serving_helpers import FEATURES, row, train
from ui_world import MODEL, UiWorld, fill_project

pytestmark = pytest.mark.reliability

ALL = ["predict", "feedback", "read", "admin"]
Call = Callable[[TestClient, dict[str, str], "Theirs"], httpx.Response]


@dataclass(frozen=True)
class Theirs:
    """Tenant B's things, which tenant A asks for."""

    model: str
    prediction_id: str = ""
    secret: str = ""  # A's key (the dashboard's forms carry its CSRF token)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def text_of(response: httpx.Response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def hidden(response: httpx.Response, theirs: Theirs) -> bool:
    """B's model and prediction appear nowhere in the answer."""
    body = response.text
    return theirs.model not in body and (
        not theirs.prediction_id or theirs.prediction_id not in body
    )


# -- the model server ---------------------------------------------------------------------
def _infer(c: TestClient, h: dict[str, str], t: Theirs) -> httpx.Response:
    values = [row(0)[f] for f in FEATURES]
    tensor = {"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64", "data": values}
    return c.post(f"/v2/models/{t.model}/infer", json={"inputs": [tensor]}, headers=h)


def _label(relabel: bool) -> Call:
    def call(c: TestClient, h: dict[str, str], t: Theirs) -> httpx.Response:
        body = {"labels": [{"prediction_id": t.prediction_id, "label": 0}], "relabel": relabel}
        return c.post("/v1/feedback", json=body, headers=h)

    return call


# (method, path) -> (how A asks for B's thing, what A must get: "404", "403", "absent"
# (200 without B's things), "open" (no tenant's data: health probes))
SERVER: dict[tuple[str, str], tuple[Call, str]] = {
    ("GET", "/v1/models"): (lambda c, h, t: c.get("/v1/models", headers=h), "absent"),
    ("POST", "/v1/models/{name}/predict"): (
        lambda c, h, t: c.post(
            f"/v1/models/{t.model}/predict", json={"instances": [row(0)]}, headers=h
        ),
        "404",
    ),
    ("POST", "/v1/feedback"): (_label(False), "unlabelled"),
    ("GET", "/v1/models/{name}/traffic"): (
        lambda c, h, t: c.get(f"/v1/models/{t.model}/traffic", headers=h),
        "404",
    ),
    ("PUT", "/v1/models/{name}/traffic"): (
        lambda c, h, t: c.put(
            f"/v1/models/{t.model}/traffic", json={"arms": {"champion": 100}}, headers=h
        ),
        "404",
    ),
    ("GET", "/v2"): (lambda c, h, t: c.get("/v2", headers=h), "absent"),
    ("GET", "/v2/health/live"): (lambda c, h, t: c.get("/v2/health/live"), "open"),
    ("GET", "/v2/health/ready"): (lambda c, h, t: c.get("/v2/health/ready"), "open"),
    ("GET", "/v2/models/{name}"): (
        lambda c, h, t: c.get(f"/v2/models/{t.model}", headers=h),
        "404",
    ),
    ("GET", "/v2/models/{name}/ready"): (
        lambda c, h, t: c.get(f"/v2/models/{t.model}/ready", headers=h),
        "404",
    ),
    ("POST", "/v2/models/{name}/infer"): (_infer, "404"),
    ("GET", "/metrics"): (lambda c, h, t: c.get("/metrics", headers=h), "absent"),
    ("GET", "/healthz"): (lambda c, h, t: c.get("/healthz"), "open"),
    ("GET", "/readyz"): (lambda c, h, t: c.get("/readyz"), "open"),
    ("GET", "/openapi.json"): (lambda c, h, t: c.get("/openapi.json", headers=h), "absent"),
}
# Beyond the routes, the same endpoints asked another way.
SERVER_EXTRA: dict[str, tuple[Call, str]] = {
    "relabel (feedback with relabel: true)": (_label(True), "unlabelled"),
    "predict with an Idempotency-Key (the checked route)": (
        lambda c, h, t: c.post(
            f"/v1/models/{t.model}/predict",
            json={"instances": [row(0)]},
            headers={**h, "Idempotency-Key": "cross-tenant"},
        ),
        "404",
    ),
}


@dataclass
class Server:
    client: TestClient
    audit: SqliteAuditLog
    a: dict[str, str]  # tenant a's key, every scope
    b: dict[str, str]  # tenant b's key, every scope
    operator: dict[str, str]  # tenant default's admin key
    theirs: Theirs  # b's model and one of its predictions


def _server_app(source: InMemoryModelSource, audit: SqliteAuditLog, keys: KeyStore) -> Any:
    return create_app(
        [ServedModel("fraud", tenant="a"), ServedModel("loans", tenant="b")],
        source,
        settings=ServingConfig(auth="keys"),
        audit=audit,
        keys=keys,
        refresh_s=0,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cross-tenant-server")
    source = InMemoryModelSource()
    booster = train(1)
    source.add("fraud", "1", booster, aliases=["champion"])
    source.add("loans", "1", booster, aliases=["champion"])
    audit = SqliteAuditLog(root / "audit.db", synchronous="normal")
    keys = KeyStore.at(f"sqlite:///{root / 'registry.db'}")
    a, b = (bearer(keys.create(t, ALL, who="test")[1]) for t in ("a", "b"))
    operator = bearer(keys.create("default", ["admin"], who="test")[1])
    with TestClient(_server_app(source, audit, keys)) as client:
        made = client.post("/v1/models/loans/predict", json={"instances": [row(0)]}, headers=b)
        assert made.status_code == 200, made.text
        pid = made.json()["predictions"][0]["prediction_id"]
        labelled = {"labels": [{"prediction_id": pid, "label": 1}]}
        assert client.post("/v1/feedback", json=labelled, headers=b).json()["accepted"] == 1
        own = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}, headers=a)
        assert own.status_code == 200
        yield Server(client, audit, a, b, operator, Theirs("loans", pid))
    keys.close()
    audit.close()


def _judge(answer: httpx.Response, want: str, theirs: Theirs) -> None:
    if want == "404":
        assert answer.status_code == 404, answer.text
        assert "fraud" not in answer.text  # nor a list of what is served
    elif want == "403":
        assert answer.status_code == 403, answer.text
    elif want == "absent":
        assert answer.status_code == 200, answer.text
        assert hidden(answer, theirs), answer.text[:2000]
    elif want == "open":
        assert answer.status_code == 200
        assert hidden(answer, theirs)
    else:  # "unlabelled": feedback counts B's prediction as unknown, never names it
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 0, "unknown_count": 1}


@pytest.mark.parametrize("endpoint", [*SERVER, *SERVER_EXTRA], ids=str)
def test_a_key_of_tenant_a_gets_nothing_of_tenant_bs_from_the_server(
    server: Server, endpoint: Any
) -> None:
    call, want = SERVER[endpoint] if endpoint in SERVER else SERVER_EXTRA[endpoint]
    answer = call(server.client, server.a, server.theirs)
    _judge(answer, want, server.theirs)
    record = server.audit.get(server.theirs.prediction_id)
    assert record.label == 1.0  # B's label as B gave it
    assert record.tenant == "b"


def test_b_reaches_its_own_things_so_the_refusals_above_are_about_tenants(
    server: Server,
) -> None:
    own = Theirs("fraud")  # a's own model, asked by a: every model endpoint answers
    for (method, path), (call, want) in SERVER.items():
        if want == "404":
            assert call(server.client, server.a, own).status_code == 200, (method, path)
    listed = server.client.get("/v1/models", headers=server.b).json()["models"]
    assert [m["name"] for m in listed] == ["loans"]


def test_metrics_show_a_tenant_its_own_series_and_the_operator_all(server: Server) -> None:
    mine = server.client.get("/metrics", headers=server.a).text
    assert 'model="fraud"' in mine
    assert 'model="loans"' not in mine
    assert 'endpoint="predict"' not in mine  # summed over every tenant: operator only
    everything = server.client.get("/metrics", headers=server.operator).text
    assert 'model="loans"' in everything
    assert 'endpoint="predict"' in everything


def _methods(route: Route) -> list[str]:
    return sorted(set(route.methods or ()) - {"HEAD"})


def _routes(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            out |= _routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            out |= {(m, prefix + route.path) for m in _methods(route)}
    return out


def test_every_route_of_the_server_and_dashboard_is_in_the_cross_tenant_table(
    server: Server, dashboard: Dashboard
) -> None:
    served = _routes(server.client.app.routes)  # type: ignore[attr-defined]
    missing = sorted(served - set(SERVER))
    assert not missing, f"routes with no cross-tenant case in SERVER: {missing}"
    assert not sorted(set(SERVER) - served), "SERVER names routes the server no longer has"
    pages = _routes(dashboard.app.routes)
    missing = sorted(pages - set(DASHBOARD))
    assert not missing, f"dashboard routes with no cross-tenant case in DASHBOARD: {missing}"
    assert not sorted(set(DASHBOARD) - pages), "DASHBOARD names routes the dashboard lacks"


# -- the dashboard --------------------------------------------------------------------------
RIVAL = "rival"  # tenant beta's model; MODEL (loans) is tenant default's


def _form(path: str) -> Call:
    def call(c: TestClient, h: dict[str, str], t: Theirs) -> httpx.Response:
        data = {"csrf": csrf_of(t.secret), "alias": "champion", "version": "1", "reason": "x"}
        return c.post(path.format(name=t.model), data=data)

    return call


def _get(path: str) -> Call:
    return lambda c, h, t: c.get(path.format(name=t.model, pid=t.prediction_id))


DASHBOARD: dict[tuple[str, str], tuple[Call, str]] = {
    ("GET", "/ui/"): (_get("/ui/"), "absent"),
    ("GET", "/ui/models"): (_get("/ui/models"), "absent"),
    ("GET", "/ui/models/{name}"): (_get("/ui/models/{name}"), "404"),
    ("GET", "/ui/models/{name}/v/{version:int}"): (_get("/ui/models/{name}/v/1"), "404"),
    ("GET", "/ui/models/{name}/rollback"): (_get("/ui/models/{name}/rollback"), "404"),
    ("POST", "/ui/models/{name}/rollback"): (_form("/ui/models/{name}/rollback"), "404"),
    ("GET", "/ui/models/{name}/promote"): (_get("/ui/models/{name}/promote?version=1"), "404"),
    ("POST", "/ui/models/{name}/promote"): (_form("/ui/models/{name}/promote"), "404"),
    ("GET", "/ui/drift/{name}"): (_get("/ui/drift/{name}"), "404"),
    ("GET", "/ui/loop/{name}"): (_get("/ui/loop/{name}"), "404"),
    ("GET", "/ui/features"): (_get("/ui/features"), "absent"),
    ("GET", "/ui/predictions"): (_get("/ui/predictions?id={pid}"), "no-prediction"),
    ("GET", "/ui/traffic"): (_get("/ui/traffic"), "absent"),
    ("GET", "/ui/traffic/{name}/split"): (_get("/ui/traffic/{name}/split"), "404"),
    ("POST", "/ui/traffic/{name}/split"): (_form("/ui/traffic/{name}/split"), "404"),
    # the login and logout hold no tenant's data
    ("GET", "/ui/login"): (lambda c, h, t: TestClient(c.app).get("/ui/login"), "open"),
    ("POST", "/ui/login"): (
        lambda c, h, t: TestClient(c.app).post(
            "/ui/login", data={"key": t.secret}, follow_redirects=False
        ),
        "login",
    ),
    ("POST", "/ui/logout"): (
        lambda c, h, t: TestClient(c.app).post("/ui/logout", data={"csrf": "wrong"}),
        "logout",
    ),
    ("GET", "/"): (lambda c, h, t: c.get("/", follow_redirects=False), "redirect"),
}


@dataclass
class Dashboard:
    app: Any
    client: TestClient  # logged in with tenant beta's key
    theirs: Theirs  # tenant default's model, prediction and feature view


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    world = fill_project(tmp_path_factory.mktemp("cross-tenant-ui"), predictions=200)
    toml = world.root / "driftloop.toml"
    toml.write_text(toml.read_text() + '\n[serving]\nauth = "keys"\n')
    settings = load_settings(toml, environ={})
    _beta_things(UiWorld(world.root, settings, world.now, world.explained_id, world.entity_value))
    registry = Registry.from_settings(settings)
    try:
        _, secret = registry.keys.create("beta", ["read", "admin"], who="test")
    finally:
        registry.close()
    app = standalone_ui(settings)
    with TestClient(app) as client:
        done = client.post("/ui/login", data={"key": secret}, follow_redirects=False)
        assert done.status_code == 303, done.text
        yield Dashboard(app, client, Theirs(MODEL, world.explained_id, secret))


def _beta_things(world: UiWorld) -> None:
    """Tenant beta: a model with predictions and a feature view of its own."""
    registry = Registry.from_settings(world.settings)
    try:
        signature = Signature.from_frame(pd.DataFrame({"x": [1.0, 2.0]}))
        registry.register_files(
            RIVAL, "sklearn", {"model": b"rival"}, signature=signature, alias="champion",
            tenant="beta",
        )  # fmt: skip
    finally:
        registry.close()
    log = open_audit_log(world.settings.audit.url, root=world.settings.root)
    try:
        log.write(
            [
                AuditRecord(
                    prediction_id=f"rival-{i}",
                    ts=datetime.now(UTC),
                    model=RIVAL,
                    version="1",
                    route="v1",
                    score=0.5,
                    decision="yes",
                    latency_ms=1.0,
                    features={"x": 1.0},
                    tenant="beta",
                )
                for i in range(3)
            ]
        )
    finally:
        log.close()
    store = FeatureStore(world.settings)
    try:
        assert store.registry is not None
        entity = Entity("rival_entity", ["rival_id"])
        view = FeatureView(
            "rival_stats", entities=[entity], source="rival.parquet", timestamp_field="ts",
            schema=[Field("x", "float64")],
        )  # fmt: skip
        store.registry.apply([entity, view], tenant="beta")
    finally:
        store.close()


@pytest.mark.parametrize("route", list(DASHBOARD), ids=str)
def test_a_key_of_tenant_a_gets_nothing_of_tenant_bs_from_the_dashboard(
    dashboard: Dashboard, route: tuple[str, str]
) -> None:
    call, want = DASHBOARD[route]
    theirs = dashboard.theirs
    answer = call(dashboard.client, {}, theirs)
    if want == "404":
        assert answer.status_code == 404, text_of(answer)[:500]
    elif want == "absent":
        assert answer.status_code == 200
        page = text_of(answer)
        assert theirs.model not in page, page[:2000]
        assert "applicant_stats" not in page  # tenant default's feature view
    elif want == "no-prediction":
        assert f"No prediction with id '{theirs.prediction_id}'" in text_of(answer)
        assert "Prediction " + theirs.prediction_id not in text_of(answer)
    elif want == "login":  # logs A in as A: a session of its own tenant, nothing more
        assert answer.status_code == 303
    elif want == "logout":
        assert answer.status_code in (401, 403)
    elif want == "redirect":
        assert answer.status_code == 307
    else:
        assert answer.status_code == 200
        assert theirs.model not in text_of(answer)
    own = dashboard.client.get(f"/ui/models/{RIVAL}")
    assert own.status_code == 200  # the key is logged in and sees its own model


def test_the_dashboard_lists_a_tenant_its_own_model_and_feature_view(
    dashboard: Dashboard,
) -> None:
    assert RIVAL in text_of(dashboard.client.get("/ui/models"))
    assert "rival_stats" in text_of(dashboard.client.get("/ui/features"))
    assert "Prediction rival-1" in text_of(dashboard.client.get("/ui/predictions?id=rival-1"))
