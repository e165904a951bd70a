"""The dashboard under API keys (``serving.auth = "keys"``): behind a login, each key sees
its own tenant's models and nothing of another's, on every page; admin actions need the
admin scope and the form's CSRF token, and are recorded with the key's id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape

import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.audit import AuditRecord, open_audit_log
from driftloop.core.config import load_settings
from driftloop.features import Entity, FeatureStore, FeatureView, Field
from driftloop.registry import Registry, Signature
from driftloop.ui import standalone_ui
from ui_world import MODEL, UiWorld, fill_project

RIVAL = "rival"  # tenant beta's model; MODEL (loans) is tenant default's


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    world = fill_project(tmp_path_factory.mktemp("ui-tenants"), predictions=300)
    toml = world.root / "driftloop.toml"
    toml.write_text(toml.read_text() + '\n[serving]\nauth = "keys"\n')
    settings = load_settings(toml, environ={})
    registry = Registry.from_settings(settings)
    try:
        signature = Signature.from_frame(pd.DataFrame({"x": [1.0, 2.0]}))
        for version in (1, 2):
            registry.register_files(
                RIVAL, "sklearn", {"model": b"rival"}, signature=signature,
                alias="champion" if version == 1 else "challenger", tenant="beta",
            )  # fmt: skip
    finally:
        registry.close()
    log = open_audit_log(settings.audit.url, root=settings.root)
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
                    entity_keys={"applicant_id": "7"},
                )
                for i in range(5)
            ]
        )
    finally:
        log.close()
    store = FeatureStore(settings)
    try:
        definitions = store.registry
        assert definitions is not None
        rival = Entity("rival_entity", ["rival_id"])
        view = FeatureView(
            "rival_stats", entities=[rival], source="rival.parquet", timestamp_field="ts",
            schema=[Field("x", "float64")],
        )  # fmt: skip
        definitions.apply([rival, view], tenant="beta")
    finally:
        store.close()
    return UiWorld(world.root, settings, world.now, world.explained_id, world.entity_value)


@pytest.fixture(scope="module")
def keys(world: UiWorld) -> dict[str, str]:
    registry = Registry.from_settings(world.settings)
    try:
        made = {
            "reader": registry.keys.create("default", ["read"], name="look", who="t"),
            "admin": registry.keys.create("default", ["read", "admin"], name="ops", who="t"),
            "beta": registry.keys.create("beta", ["read", "admin"], name="beta-ops", who="t"),
            "predict": registry.keys.create("default", ["predict"], name="api", who="t"),
        }
    finally:
        registry.close()
    return {who: secret for who, (_, secret) in made.items()}


@pytest.fixture(scope="module")
def app(world: UiWorld) -> Iterator[object]:
    dashboard = standalone_ui(world.settings)
    with TestClient(dashboard):  # its lifespan closes the parts it opened
        yield dashboard


def client_of(app: object, secret: str | None) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    if secret is not None:
        done = client.post("/ui/login", data={"key": secret}, follow_redirects=False)
        assert done.status_code == 303, done.text
    return client


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def champion(world: UiWorld, model: str) -> int:
    registry = Registry.from_settings(world.settings)
    try:
        return registry.alias_version(model, "champion")
    finally:
        registry.close()


def test_without_a_key_pages_lead_to_the_login_and_posts_are_refused(app: object) -> None:
    client = client_of(app, None)
    page = client.get(f"/ui/models/{MODEL}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == f"/ui/login?next=/models/{MODEL}"
    assert client.post(f"/ui/models/{MODEL}/rollback", data={}).status_code == 401
    assert "API key" in client.get("/ui/login").text


def test_a_bad_or_scope_less_key_does_not_log_in(app: object, keys: dict[str, str]) -> None:
    client = client_of(app, None)
    wrong = client.post("/ui/login", data={"key": "dlk_guess"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    api_only = client.post("/ui/login", data={"key": keys["predict"]})
    assert api_only.status_code == 401
    assert "neither the read nor the admin scope" in api_only.text


def test_the_login_cookie_is_http_only_same_site_strict_and_on_the_dashboard_path(
    app: object, keys: dict[str, str]
) -> None:
    client = client_of(app, None)
    done = client.post("/ui/login", data={"key": keys["reader"]}, follow_redirects=False)
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("driftloop_ui_key=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui/" in cookie


PAGES_OF = {
    "overview": ("/ui/", None),
    "models": ("/ui/models", None),
    "model": ("/ui/models/{m}", 404),
    "version": ("/ui/models/{m}/v/1", 404),
    "drift": ("/ui/drift/{m}", 404),
    "loop": ("/ui/loop/{m}", 404),
    "traffic": ("/ui/traffic?days=30", None),
    "predictions": ("/ui/predictions", None),
    "entity": ("/ui/predictions?entity=applicant_id%3D7", None),
    "rollback": ("/ui/models/{m}/rollback?alias=champion", 404),
    "promote": ("/ui/models/{m}/promote?alias=champion&version=2", 404),
    "split": ("/ui/traffic/{m}/split?arm_champion=50&arm_challenger=50", 404),
}


@pytest.mark.parametrize("page", list(PAGES_OF))
def test_a_key_of_tenant_a_sees_nothing_of_tenant_bs_model(
    app: object, keys: dict[str, str], page: str
) -> None:
    path, status = PAGES_OF[page]
    for secret, mine, theirs in ((keys["admin"], MODEL, RIVAL), (keys["beta"], RIVAL, MODEL)):
        client = client_of(app, secret)
        own = client.get(path.format(m=mine))
        assert own.status_code == 200, (page, own.text)
        other = client.get(path.format(m=theirs))
        assert other.status_code == (status or 200)
        if status is None:  # a page of every visible model: the other's is not on it
            assert theirs not in text(other.text).replace("driftloop", "")
        else:  # answered as a model that does not exist
            assert f"No model named '{theirs}'" in text(other.text)


def test_a_prediction_of_another_tenant_is_not_found(app: object, keys: dict[str, str]) -> None:
    theirs = client_of(app, keys["admin"]).get("/ui/predictions?id=rival-1")
    assert "No prediction with id 'rival-1'" in text(theirs.text)
    assert "Prediction rival-1" in text(
        client_of(app, keys["beta"]).get("/ui/predictions?id=rival-1").text
    )


def test_each_key_sees_its_own_tenants_feature_views_only(
    app: object, keys: dict[str, str]
) -> None:
    ours = text(client_of(app, keys["reader"]).get("/ui/features").text)
    assert "applicant_stats" in ours
    assert "rival_stats" not in ours
    assert "rival_entity" not in ours
    theirs = text(client_of(app, keys["beta"]).get("/ui/features").text)
    assert "rival_stats" in theirs
    assert "applicant_stats" not in theirs


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_key_without_the_admin_scope_cannot_act(
    app: object, keys: dict[str, str], world: UiWorld
) -> None:
    client = client_of(app, keys["reader"])
    form = client.get(f"/ui/models/{MODEL}/rollback?alias=champion").text
    refused = client.post(
        f"/ui/models/{MODEL}/rollback", data={"alias": "champion", "csrf": csrf(form)}
    )
    assert refused.status_code == 403
    assert "lacks the admin scope" in refused.text
    assert champion(world, MODEL) == 2


def test_an_action_needs_the_forms_csrf_token(
    app: object, keys: dict[str, str], world: UiWorld
) -> None:
    client = client_of(app, keys["admin"])
    for token in (None, "0" * 64):
        form = {"alias": "champion", "version": "3"} | ({"csrf": token} if token else {})
        refused = client.post(f"/ui/models/{MODEL}/promote", data=form)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    assert champion(world, MODEL) == 2


def test_tenant_as_admin_cannot_act_on_tenant_bs_model(
    app: object, keys: dict[str, str], world: UiWorld
) -> None:
    client = client_of(app, keys["admin"])
    token = csrf(client.get(f"/ui/models/{MODEL}/promote?version=3").text)
    for path, form in (
        (f"/ui/models/{RIVAL}/promote", {"alias": "champion", "version": "2"}),
        (f"/ui/models/{RIVAL}/rollback", {"alias": "champion"}),
        (f"/ui/traffic/{RIVAL}/split", {"arm_champion": "50", "arm_challenger": "50"}),
    ):
        refused = client.post(path, data={**form, "csrf": token})
        assert refused.status_code == 404, path
    assert champion(world, RIVAL) == 1


def test_an_admin_key_promotes_its_model_recorded_with_the_keys_id(
    app: object, keys: dict[str, str], world: UiWorld
) -> None:
    client = client_of(app, keys["beta"])
    form = client.get(f"/ui/models/{RIVAL}/promote?alias=champion&version=2").text
    assert "Acting as API key" in text(form)
    done = client.post(
        f"/ui/models/{RIVAL}/promote",
        data={"alias": "champion", "version": "2", "csrf": csrf(form), "reason": "beats v1"},
    )
    assert done.status_code == 200
    assert champion(world, RIVAL) == 2
    key_id = re.search(r"key (\S+) · tenant beta", text(done.text))
    assert key_id is not None
    assert f"champion v1 → v2 move key:{key_id.group(1)} beats v1" in text(done.text)


def test_logging_out_forgets_the_key(app: object, keys: dict[str, str]) -> None:
    client = client_of(app, keys["reader"])
    page = client.get("/ui/").text
    out = client.post("/ui/logout", data={"csrf": csrf(page)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_serve_mounts_the_dashboard_behind_the_login_under_keys(
    world: UiWorld, keys: dict[str, str]
) -> None:
    from driftloop.cli._serve import build_app

    app = build_app({"DRIFTLOOP_CONFIG": str(world.root / "driftloop.toml"),
                     "DRIFTLOOP_SERVE_AUDIT": "0"})  # fmt: skip
    client = TestClient(app)  # the model server is not started: only /ui is asked
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login?next=/"
    client.post("/ui/login", data={"key": keys["beta"]})
    assert "rival" in client.get("/ui/models").text
    words = text(client.get("/ui/traffic").text)
    assert "Breaker states: unknown." in words  # not started: no worker has reported


def test_a_form_posted_from_another_site_is_refused(app: object, keys: dict[str, str]) -> None:
    client = client_of(app, None)
    evil = {"origin": "https://evil.example"}
    login = client.post("/ui/login", data={"key": keys["admin"]}, headers=evil)
    assert login.status_code == 403
    assert "set-cookie" not in login.headers
    ours = {"origin": "http://testserver"}
    assert client.post("/ui/login", data={"key": keys["admin"]}, headers=ours).status_code == 200


def test_the_login_only_leads_back_into_the_dashboard(app: object, keys: dict[str, str]) -> None:
    client = client_of(app, None)
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        done = client.post(
            "/ui/login", data={"key": keys["reader"], "next": target}, follow_redirects=False
        )
        assert done.headers["location"] == "/ui/", target
