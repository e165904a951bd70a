"""``driftloop loop``: a retraining request, one pass that acts on it, where the rollout
is and its decision log, and the errors a user gets for a model without a policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.core.config import load_settings
from driftloop.registry import Registry, Signature
from registry_helpers import toy_lightgbm

runner = CliRunner()
POLICY = """
[loop.loans.triggers]
drift_features = 0
[loop.loans.rollout]
shadow_requests = 10
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "driftloop.toml").write_text(POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    registry = Registry.from_settings(load_settings(root=tmp_path, environ={}))
    model, X = toy_lightgbm()
    registry.register("loans", model, signature=Signature.from_frame(X), alias="champion")
    registry.close()
    return tmp_path


def test_status_and_history_show_a_requested_retraining(project: Path) -> None:
    result = runner.invoke(app, ["loop", "retrain", "loans", "--reason", "new data", "--by", "ana"])
    assert result.exit_code == 0, result.output
    assert "requested" in result.output
    status = runner.invoke(app, ["loop", "status", "--json"])
    assert status.exit_code == 0, status.output
    [row] = json.loads(status.output)
    assert (row["model"], row["state"], row["requested"], row["leader"]) == (
        "loans", "idle", "new data", None,
    )  # fmt: skip
    shown = runner.invoke(app, ["loop", "history", "loans", "--json"])
    [decision] = json.loads(shown.output)
    assert (decision["action"], decision["rule"], decision["who"]) == ("request", "new data", "ana")
    table = runner.invoke(app, ["loop", "history", "loans"])
    assert "request" in table.output
    assert "new data" in table.output


def test_a_retraining_of_a_model_without_a_policy_is_refused_by_name(project: Path) -> None:
    result = runner.invoke(app, ["loop", "retrain", "fraud", "--reason", "why"])
    assert result.exit_code == 2
    assert "Model 'fraud' has no loop policy" in result.output
    assert "[loop.fraud]" in result.output


def test_run_without_any_policy_says_what_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "driftloop.toml").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 2
    assert "add a [loop.<model>]" in result.output


def test_a_bad_history_limit_is_refused(project: Path) -> None:
    result = runner.invoke(app, ["loop", "history", "loans", "--limit", "0"])
    assert result.exit_code == 2
    assert "--limit must be at least 1" in result.output


def test_serve_with_loop_runs_the_controller_beside_the_server(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --loop` leads the loop from the serving process: a requested retraining is
    taken up by a controller named after the server, while the server runs."""
    import time

    import uvicorn

    from driftloop.loop import history

    runner.invoke(app, ["loop", "retrain", "loans", "--reason", "try one", "--by", "ana"])
    seen: list[str] = []

    def server(*args: object, **kwargs: object) -> None:  # stands in for uvicorn's loop
        registry = Registry.from_settings(load_settings(root=project, environ={}))
        deadline = time.monotonic() + 120  # a bound for a controller that never acts
        while time.monotonic() < deadline and not seen:
            seen.extend(d.who for d in history(registry.engine, "loans") if d.action != "request")
            time.sleep(0.1)
        registry.close()

    monkeypatch.setattr(uvicorn, "run", server)
    result = runner.invoke(app, ["serve", "--loop", "--loop-interval", "0.2", "--no-audit"])
    assert result.exit_code == 0, result.output
    assert seen
    assert seen[0].startswith("serve:")


def test_serve_with_loop_but_no_policy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "driftloop.toml").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--loop"])
    assert result.exit_code == 2
    assert "no model has a loop policy" in " ".join(result.output.split())
