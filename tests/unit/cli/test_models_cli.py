from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from tabular_world import model_toml, table

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data").mkdir()
    table("binary", rows=2_000).to_csv(tmp_path / "data" / "applications.csv", index=False)
    (tmp_path / "driftloop.toml").write_text(model_toml("binary", name="loans"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "tester")
    return tmp_path


def test_train_then_manage_versions_from_the_command_line(project: Path) -> None:
    first = runner.invoke(app, ["train", "--promote"])
    assert first.exit_code == 0, first.output
    assert "loans:1 and promoted it to champion" in first.output
    again = runner.invoke(app, ["train", "loans"])
    assert again.exit_code == 0, again.output
    assert again.output.count("cached") == 8

    listed = runner.invoke(app, ["models", "list"])
    assert "champion=v1" in listed.output
    shown = runner.invoke(app, ["models", "show", "loans:1"])
    assert '"flavor": "lightgbm"' in shown.output
    card = runner.invoke(app, ["models", "card", "loans:1"])
    assert card.output.startswith("# Model card: loans:1")
    assert runner.invoke(app, ["models", "verify", "loans:1"]).output.startswith("ok model")

    # A second version (different window), promoted by hand, then rolled back.
    second = runner.invoke(app, ["train", "--start", "2026-03-03"])
    assert second.exit_code == 0, second.output
    moved = runner.invoke(
        app, ["models", "promote", "loans:2", "--alias", "champion", "--reason", "newer data"]
    )
    assert "champion: v1 -> v2" in moved.output
    when = datetime.now(UTC).isoformat()
    back = runner.invoke(app, ["models", "rollback", "loans", "--reason", "alerts"])
    assert "champion: v2 -> v1  (rollback) by tester: alerts" in back.output
    history = runner.invoke(app, ["models", "history", "loans", "--alias", "champion"])
    assert len(history.output.strip().splitlines()) == 3
    at = runner.invoke(app, ["models", "at", "loans", when])
    assert re.search(r"champion at .*: loans:2", at.output), at.output


def test_unknown_alias_and_bad_reference_are_clear_errors(project: Path) -> None:
    assert runner.invoke(app, ["train"]).exit_code == 0
    unknown = runner.invoke(app, ["models", "rollback", "loans", "--alias", "canary"])
    assert unknown.exit_code == 2
    assert "no alias 'canary'" in unknown.output
    bad = runner.invoke(app, ["models", "card", "loans"])
    assert bad.exit_code == 2
    assert "NAME:VERSION" in bad.output
    missing = runner.invoke(app, ["train", "--data", "nowhere.csv"])
    assert missing.exit_code == 2
    assert "Training data nowhere.csv does not exist" in missing.output


def test_failed_gates_exit_1_and_promotion_then_needs_force_and_a_reason(
    project: Path,
) -> None:
    frame = pd.read_csv(project / "data" / "applications.csv")
    frame["repaid_copy"] = frame["repaid"]  # a leaked label
    frame.to_csv(project / "data" / "leaky.csv", index=False)
    trained = runner.invoke(app, ["train", "--data", "data/leaky.csv", "--promote"])
    assert trained.exit_code == 1, trained.output
    assert "leakage" in trained.output
    assert "repaid_copy" in " ".join(trained.output.split())
    refused = runner.invoke(app, ["models", "promote", "loans:1", "--reason", "try"])
    assert refused.exit_code == 2
    assert "failed its release gates (leakage)" in refused.output
    forced = runner.invoke(
        app, ["models", "promote", "loans:1", "--force", "--reason", "known issue"]
    )
    assert forced.exit_code == 0, forced.output
    assert "forced past failed gates (leakage): known issue" in forced.output
