"""``driftloop keys``: a key made on the command line works once, is listed without its
secret, is revoked for good, and every change names who made it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.core.config import load_settings
from driftloop.registry import Registry

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "driftloop.toml").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _registry(project: Path) -> Registry:
    return Registry.from_settings(load_settings(root=project, environ={}))


def test_create_list_revoke_a_key_from_the_command_line(project: Path) -> None:
    made = runner.invoke(
        app,
        ["keys", "create", "--tenant", "acme", "--scope", "predict", "--scope", "feedback",
         "--expires", "30d", "--rate", "100/s", "--actor", "ana", "--json"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert (key["tenant"], key["scopes"], key["rate_per_s"]) == (
        "acme",
        ["predict", "feedback"],
        100.0,
    )
    registry = _registry(project)
    try:
        assert registry.keys.verify(key["secret"]).id == key["id"]  # type: ignore[union-attr]
    finally:
        registry.close()
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert key["secret"] not in listed.output
    assert [k["id"] for k in json.loads(listed.output)] == [key["id"]]
    revoked = runner.invoke(app, ["keys", "revoke", key["id"], "--actor", "bo"])
    assert revoked.exit_code == 0, revoked.output
    assert runner.invoke(app, ["keys", "quota", "--tenant", "acme", "--requests-per-day", "5",
                               "--actor", "cy"]).exit_code == 0  # fmt: skip
    events = runner.invoke(app, ["keys", "events", "--tenant", "acme"]).output
    assert f"create-key acme {key['id']} by ana" in events
    assert f"revoke-key acme {key['id']} by bo" in events
    assert "set-quota acme  by cy" in events
    registry = _registry(project)
    try:
        assert registry.keys.verify(key["secret"]) is None
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "write"], "scopes"),
        (["--scope", "read", "--expires", "soon"], "--expires"),
        (["--scope", "read", "--rate", "fast"], "--rate"),
    ],
)
def test_bad_scopes_lifetimes_and_rates_are_one_clear_error(
    project: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["keys", "create", *args])
    assert result.exit_code == 2
    assert message in result.output
