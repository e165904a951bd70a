from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient
from typer.testing import CliRunner

from driftloop.audit import SqliteAuditLog
from driftloop.cli import app
from driftloop.cli._serve import build_app, parse_served
from driftloop.serving import DirectoryModelSource
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
