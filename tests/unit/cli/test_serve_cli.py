from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from driftloop.audit import SqliteAuditLog
from driftloop.cli import app
from driftloop.cli._serve import build_app, parse_served
from driftloop.registry import Registry, Signature
from driftloop.serving import DirectoryModelSource
from registry_helpers import toy_lightgbm
from serving_helpers import row, train


def test_serve_refuses_a_missing_models_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--models", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "is not a folder" in " ".join(result.output.split())


def test_model_specs_name_alias_and_public_name() -> None:
    a, b = parse_served(["fraud", "shadow=fraud@challenger"])
    assert (a.name, a.alias, a.public_names[0]) == ("fraud", "champion", "fraud")
    assert (b.name, b.alias, b.public_names[0]) == ("fraud", "challenger", "shadow")


def test_worker_app_serves_a_models_folder_and_audits_to_the_configured_log(
    tmp_path: Path,
) -> None:
    DirectoryModelSource.save(tmp_path / "models", "fraud", "7", train(1), aliases=["champion"])
    env: dict[str, Any] = {
        "DRIFTLOOP_SERVE_MODELS_DIR": str(tmp_path / "models"),
        "DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    with TestClient(build_app(env)) as client:
        body = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}).json()
    assert body["version"] == "7"
    log = SqliteAuditLog(tmp_path / "audit.db")
    assert log.get(body["predictions"][0]["prediction_id"]).version == "7"
    log.close()


def test_worker_app_takes_the_feedback_token_from_the_environment(tmp_path: Path) -> None:
    DirectoryModelSource.save(tmp_path / "models", "fraud", "7", train(1), aliases=["champion"])
    env: dict[str, Any] = {
        "DRIFTLOOP_SERVE_MODELS_DIR": str(tmp_path / "models"),
        "DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "DRIFTLOOP_FEEDBACK_TOKEN": "from-env",
    }
    with TestClient(build_app(env)) as client:
        body = client.post("/v1/models/fraud/predict", json={"instances": [row(1)]}).json()
        labels = {
            "labels": [{"prediction_id": body["predictions"][0]["prediction_id"], "label": 1}]
        }
        assert client.post("/v1/feedback", json=labels).status_code == 401
        token = {"Authorization": "Bearer from-env"}
        assert client.post("/v1/feedback", json=labels, headers=token).status_code == 200


def test_serve_exits_at_start_naming_the_known_models_when_one_cannot_be_resolved(
    tmp_path: Path,
) -> None:
    from driftloop.core.config import load_settings

    (tmp_path / "driftloop.toml").write_text(
        '[models.fraud.decision]\nthreshold = 0.5\nlabels = ["a", "b"]\n'
    )
    config = ["--config", str(tmp_path / "driftloop.toml")]
    empty = CliRunner().invoke(app, ["serve", *config])
    assert empty.exit_code == 2
    assert "no models yet" in " ".join(empty.output.split())
    registry = Registry.from_settings(load_settings(tmp_path / "driftloop.toml", environ={}))
    model, frame = toy_lightgbm()
    registry.register("fraud", model, signature=Signature.from_frame(frame))
    registry.close()
    typo = CliRunner().invoke(app, ["serve", "-m", "frod", *config])
    assert typo.exit_code == 2
    assert "Model 'frod' is not in the registry. Known: fraud." in " ".join(typo.output.split())
    no_alias = CliRunner().invoke(app, ["serve", "-m", "fraud@nope", *config])
    assert no_alias.exit_code == 2
    assert "has no alias 'nope'" in " ".join(no_alias.output.split())


def test_served_models_take_their_policies_and_entity_keys_from_driftloop_toml(
    tmp_path: Path,
) -> None:
    from driftloop.core.config import load_settings

    (tmp_path / "driftloop.toml").write_text(
        '[models.loans]\nentity_keys = ["applicant_id"]\n'
        '[models.loans.decision]\nthreshold = 0.5\nlabels = ["no", "yes"]\n'
        '[models.loans.missing]\npolicy = "reject"\n'
    )
    settings = load_settings(tmp_path / "driftloop.toml", environ={})
    (loans,) = parse_served(["loans"], ("region_id",), settings)
    assert loans.entity_keys == ("applicant_id", "region_id")
    assert loans.decision is not None
    assert loans.decision.decide(0.7) == "yes"
    assert loans.missing.policy == "reject"


def test_worker_app_with_keys_takes_tenants_and_keys_from_the_registry(tmp_path: Path) -> None:
    """``serving.auth = "keys"``: a model's tenant is the one it was registered under, and
    a key made in the registry's database opens only its tenant's models."""
    registry = Registry.from_url(f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "artifacts"))
    model, X = toy_lightgbm()
    for name, tenant in (("fraud", "a"), ("loans", "b")):
        registry.register(
            name, model, signature=Signature.from_frame(X), alias="champion", tenant=tenant
        )
    _, secret = registry.keys.create("a", ["predict", "read"], who="test")
    registry.close()
    env: dict[str, Any] = {
        "DRIFTLOOP_REGISTRY__URL": f"sqlite:///{tmp_path / 'r.db'}",
        "DRIFTLOOP_REGISTRY__ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "DRIFTLOOP_SERVE_AUDIT": "0",
        "DRIFTLOOP_SERVING__AUTH": "keys",
    }
    key = {"Authorization": f"Bearer {secret}"}
    body = {"instances": [X.iloc[0].to_dict()]}
    with TestClient(build_app(env)) as client:
        assert client.post("/v1/models/fraud/predict", json=body).status_code == 401
        assert client.post("/v1/models/fraud/predict", json=body, headers=key).status_code == 200
        assert client.post("/v1/models/loans/predict", json=body, headers=key).status_code == 404
        listed = client.get("/v1/models", headers=key).json()["models"]
        assert [m["name"] for m in listed] == ["fraud"]
        # the dashboard is behind its login, and shows a key its own tenant's models
        to_login = client.get("/ui/", headers=key, follow_redirects=False)
        assert to_login.headers["location"] == "/ui/login?next=/"
        client.post("/ui/login", data={"key": secret})
        models = client.get("/ui/models").text
        assert "fraud" in models
        assert "loans" not in models


def test_serve_gives_workers_two_minutes_to_answer_the_supervisors_health_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine, workers still importing the stack miss uvicorn's default 5 s
    ping and are restarted in a loop: the server never comes up."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # serve hands its env to workers
    DirectoryModelSource.save(tmp_path / "models", "fraud", "1", train(1), aliases=["champion"])
    result = CliRunner().invoke(
        app, ["serve", "--models", str(tmp_path / "models"), "--workers", "2", "--no-audit"]
    )
    assert result.exit_code == 0, result.output
    assert seen["workers"] == 2
    assert seen["timeout_worker_healthcheck"] >= 120
