"""Admin actions from the dashboard: confirmed, done only with the admin token, recorded
with who did them; refused (403) and harmless without it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from driftloop.registry import Registry
from driftloop.serving import token_digest
from driftloop.ui import standalone_ui
from ui_world import MODEL, UiWorld, fill_project


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    return fill_project(tmp_path_factory.mktemp("ui-admin"), predictions=300)


@pytest.fixture
def client(world: UiWorld) -> Iterator[TestClient]:
    with TestClient(standalone_ui(world.settings, admin_digest=token_digest("s3cret"))) as c:
        yield c


def champion(world: UiWorld) -> int:
    registry = Registry.from_settings(world.settings)
    try:
        return registry.alias_version(MODEL, "champion")
    finally:
        registry.close()


def test_rollback_asks_for_confirmation_before_anything_moves(
    client: TestClient, world: UiWorld
) -> None:
    page = client.get(f"/ui/models/{MODEL}/rollback?alias=champion")
    assert page.status_code == 200
    assert "moves it to <b>v1</b>" in page.text
    assert 'type="password" name="token"' in page.text
    assert champion(world) == 2


@pytest.mark.parametrize("token", [None, "", "guess"])
def test_rollback_without_the_admin_token_is_refused_and_moves_nothing(
    client: TestClient, world: UiWorld, token: str | None
) -> None:
    form = {"alias": "champion", "actor": "mallory"}
    if token is not None:
        form["token"] = token
    refused = client.post(f"/ui/models/{MODEL}/rollback", data=form)
    assert refused.status_code == 403
    assert "admin token" in refused.text
    assert champion(world) == 2


def test_rollback_with_the_token_moves_the_alias_and_records_who(
    client: TestClient, world: UiWorld
) -> None:
    form = {"alias": "champion", "token": "s3cret", "actor": "bob", "reason": "auc fell"}
    done = client.post(f"/ui/models/{MODEL}/rollback", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/models/{MODEL}"
    assert champion(world) == 1
    page = client.get(done.headers["location"]).text
    assert (
        "<td>champion</td>\n<td>v2 → v1</td>\n<td>rollback</td><td>bob</td><td>auc fell</td>"
        in page
    )


def test_admin_actions_are_off_without_an_admin_token_configured(world: UiWorld) -> None:
    with TestClient(standalone_ui(world.settings)) as client:
        refused = client.post(
            f"/ui/models/{MODEL}/rollback", data={"alias": "champion", "token": "s3cret"}
        )
    assert refused.status_code == 403
    assert "Admin actions are off" in refused.text
    assert champion(world) == 2


def test_a_split_change_is_confirmed_then_stored_with_who(
    client: TestClient, world: UiWorld
) -> None:
    review = client.get(f"/ui/traffic/{MODEL}/split?arm_champion=50&arm_challenger=50")
    assert review.status_code == 200
    assert "&#39;challenger&#39;: 50.0" in review.text
    form = {"arm_champion": "50", "arm_challenger": "50", "actor": "carol", "reason": "ramp up"}
    assert client.post(f"/ui/traffic/{MODEL}/split", data=form).status_code == 403
    form["token"] = "s3cret"
    done = client.post(f"/ui/traffic/{MODEL}/split", data=form, follow_redirects=False)
    assert done.status_code == 303
    registry = Registry.from_settings(world.settings)
    try:
        state = registry.traffic.get(MODEL)
    finally:
        registry.close()
    assert state is not None
    assert state.policy is not None
    assert state.policy["arms"] == {"champion": 50.0, "challenger": 50.0}
    assert state.policy["sticky_key"] == "applicant_id"  # the rest of the policy is kept
    assert (state.changed_by, state.reason) == ("carol", "ramp up")


def test_a_split_that_is_not_a_number_is_refused_before_confirmation(client: TestClient) -> None:
    page = client.get(f"/ui/traffic/{MODEL}/split?arm_champion=lots")
    assert page.status_code == 400


def test_an_alias_with_no_previous_holder_offers_no_rollback(client: TestClient) -> None:
    page = client.get(f"/ui/models/{MODEL}/rollback?alias=challenger")
    assert page.status_code == 200
    assert "nothing to roll back to" in page.text
    assert 'id="confirm"' not in page.text


def test_promote_asks_for_confirmation_then_needs_the_token(
    client: TestClient, world: UiWorld
) -> None:
    page = client.get(f"/ui/models/{MODEL}/promote?alias=champion&version=3")
    assert page.status_code == 200
    assert "promoting moves it to <b>v3</b>" in page.text
    assert 'type="password" name="token"' in page.text
    form = {"alias": "champion", "version": "3", "actor": "mallory"}
    for token in (None, "guess"):
        refused = client.post(
            f"/ui/models/{MODEL}/promote", data=form | ({"token": token} if token else {})
        )
        assert refused.status_code == 403
    assert champion(world) == 2


def test_promote_with_the_token_moves_the_alias_and_records_who(
    client: TestClient, world: UiWorld
) -> None:
    form = {"alias": "champion", "version": "3", "token": "s3cret", "actor": "eve",
            "reason": "challenger won the canary"}  # fmt: skip
    done = client.post(f"/ui/models/{MODEL}/promote", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert champion(world) == 3
    page = client.get(done.headers["location"]).text
    assert "<td>v2 → v3</td>\n<td>move</td><td>eve</td><td>challenger won the canary</td>" in page


def test_promote_defaults_to_the_challenger_and_names_a_bad_version(
    client: TestClient,
) -> None:
    assert "moves it to <b>v3</b>" in client.get(f"/ui/models/{MODEL}/promote").text
    assert client.get(f"/ui/models/{MODEL}/promote?version=9").status_code == 404
    assert client.get(f"/ui/models/{MODEL}/promote?version=x").status_code == 400


def test_a_version_that_failed_its_gates_is_promoted_only_when_forced(
    client: TestClient, world: UiWorld
) -> None:
    registry = Registry.from_settings(world.settings)
    try:
        mv = registry.get(MODEL, 1)
        registry.register_files(
            MODEL, "sklearn", {"model": b"bad"}, signature=mv.signature,
            gate_report={"passed": False, "checks": [{"name": "fairness", "passed": False}]},
        )  # fmt: skip
    finally:
        registry.close()
    assert "failed its release gates: fairness" in client.get(
        f"/ui/models/{MODEL}/promote?version=4"
    ).text.replace("\n", " ")
    form = {"alias": "champion", "version": "4", "token": "s3cret", "reason": "hotfix"}
    refused = client.post(f"/ui/models/{MODEL}/promote", data=form)
    assert refused.status_code == 409
    assert champion(world) == 2
    done = client.post(f"/ui/models/{MODEL}/promote", data=form | {"force": "yes"})
    assert done.status_code == 200
    assert champion(world) == 4
    assert "forced past failed gates (fairness): hotfix" in done.text
