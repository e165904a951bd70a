from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop import __version__
from driftloop.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", ["init", "simulate", "demo", "config"])
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_init_makes_a_project_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    project = tmp_path / "mine"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    assert (project / "driftloop.toml").is_file()
    assert not (project / "features.py").exists()  # only the example has one
    ignored = (project / ".gitignore").read_text()
    assert ".driftloop/" in ignored
    assert "data/" in ignored
    example = tmp_path / "fraud"
    made = runner.invoke(app, ["init", str(example), "--example", "fraud"])
    assert made.exit_code == 0, made.output
    assert "[models.fraud]" in (example / "driftloop.toml").read_text()
    assert (example / "features.py").is_file()
    unknown = runner.invoke(app, ["init", str(tmp_path / "x"), "--example", "churn"])
    assert unknown.exit_code == 2
    assert "Known: fraud" in unknown.output
    (project / "driftloop.toml").write_text("# mine\n")
    again = runner.invoke(app, ["init", str(project)])
    assert again.exit_code == 2
    assert (project / "driftloop.toml").read_text() == "# mine\n"


def test_init_writes_settings_that_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["init", str(tmp_path), "--name", "fraud", "--example", "fraud"])
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)
    assert settings["project"]["name"] == "fraud"
    assert settings["models"]["fraud"]["label"] == "is_fraud"


def test_simulate_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    args = [
        "simulate",
        "--days",
        "8",
        "--customers",
        "300",
        "--terminals",
        "600",
        "--drift-at",
        "4",
        "--drift",
        "concept",
        "--seed",
        "7",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tx = pd.read_parquet(out / "transactions.parquet")
    assert tx.loc[tx["fraud_scenario"] == 4, "tx_time_days"].min() == 4
    described = json.loads((out / "scenario.json").read_text())
    assert described["scenario"]["drift"] == ["concept"]
    assert described["summary"]["transactions"] == len(tx)


def test_simulate_refuses_an_unknown_drift_kind(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["simulate", "--drift-at", "3", "--drift", "weather", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "weather" in result.output
    assert "concept" in result.output


def test_bad_environment_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTLOOP_SERVING__PORT", "eighty")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "DRIFTLOOP_SERVING__PORT" in result.output


# The demo's whole story (a real server on 127.0.0.1) runs in
# tests/integration/test_demo_story.py.


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_flags_read_as_flags_in_every_commands_help() -> None:
    """Typer shows a boolean flag as ``<bool>``, which reads as if it took a value
    (``--once true`` is refused): every flag sets an empty metavar."""
    import typer.main

    group = typer.main.get_command(app)
    commands: list[list[str]] = [[]]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        commands.append([name])
        commands += [[name, sub] for sub in getattr(command, "commands", {})]
    for words in commands:
        result = runner.invoke(app, [*words, "--help"], terminal_width=200)
        assert result.exit_code == 0, (words, result.output)
        ours = [line for line in result.output.splitlines() if "Show this message" not in line]
        assert not [line for line in ours if "<bool>" in line], words  # (--help is Typer's)


# Commands that make things from nothing, and so read no settings file.
_WITHOUT_SETTINGS = {("init",), ("simulate",), ("demo",)}


def test_every_command_that_reads_settings_takes_config_after_its_name() -> None:
    """``driftloop models list --config F`` as ``driftloop train --config F``: a user
    should not have to know which group wants the option before its command."""
    import typer.main

    def leaves(command: Any, words: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        children = getattr(command, "commands", None)  # a group (Typer vendors click)
        if children is None:
            return [(words, command)]
        return [leaf for name, c in children.items() for leaf in leaves(c, (*words, name))]

    commands = dict(leaves(typer.main.get_command(app), ()))
    assert ("predictions", "list") in commands
    lacking = [
        " ".join(words)
        for words, command in commands.items()
        if words not in _WITHOUT_SETTINGS and not any("--config" in p.opts for p in command.params)
    ]
    assert not lacking, f"no --config: {lacking}"


def test_models_list_reads_the_registry_of_the_settings_given_after_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "driftloop.toml").write_text(
        '[registry]\nurl = "sqlite:///elsewhere/registry.db"\n'
    )
    monkeypatch.chdir(tmp_path.parent)
    for words in (["models", "list"], ["models", "history", "nope"]):
        result = runner.invoke(app, [*words, "--config", str(tmp_path / "driftloop.toml")])
        assert result.exit_code in (0, 2), result.output
        assert "No such option" not in result.output
    assert (tmp_path / "elsewhere" / "registry.db").is_file()
