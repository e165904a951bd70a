from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.data import simulate_transactions

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    simulate_transactions(customers=300, terminals=600, days=40, seed=7).write(tmp_path / "data")
    # Small data: few positives per age band, so the fairness and calibration gates are
    # loose; latency is measured, and a loaded machine must not fail the test.
    (tmp_path / "driftloop.toml").write_text(
        "[gates]\nmax_equal_opportunity_difference = 1.0\nmax_ece = 0.5\n"
        "max_p99_latency_ms = 10000.0\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "tester")
    return tmp_path


def test_train_then_manage_versions_from_the_command_line(project: Path) -> None:
    first = runner.invoke(app, ["train", "--data", "data", "--promote"])
    assert first.exit_code == 0, first.output
    assert "fraud:1 and promoted it to champion" in first.output
    again = runner.invoke(app, ["train", "--data", "data"])
    assert again.exit_code == 0, again.output
    assert again.output.count("cached") == 8

    listed = runner.invoke(app, ["models", "list"])
    assert "champion=v1" in listed.output
    shown = runner.invoke(app, ["models", "show", "fraud:1"])
    assert '"flavor": "lightgbm"' in shown.output
    card = runner.invoke(app, ["models", "card", "fraud:1"])
    assert card.output.startswith("# Model card: fraud:1")
    assert runner.invoke(app, ["models", "verify", "fraud:1"]).output.startswith("ok model")

    # A second version (different window), promoted by hand, then rolled back.
    second = runner.invoke(app, ["train", "--data", "data", "--start", "2025-01-05"])
    assert second.exit_code == 0, second.output
    moved = runner.invoke(
        app, ["models", "promote", "fraud:2", "--alias", "champion", "--reason", "newer data"]
    )
    assert "champion: v1 -> v2" in moved.output
    when = datetime.now(UTC).isoformat()
    back = runner.invoke(app, ["models", "rollback", "fraud", "--reason", "alerts"])
    assert "champion: v2 -> v1  (rollback) by tester: alerts" in back.output
    history = runner.invoke(app, ["models", "history", "fraud", "--alias", "champion"])
    assert len(history.output.strip().splitlines()) == 3
    at = runner.invoke(app, ["models", "at", "fraud", when])
    assert re.search(r"champion at .*: fraud:2", at.output), at.output


def test_unknown_alias_and_bad_reference_are_clear_errors(project: Path) -> None:
    assert runner.invoke(app, ["train", "--data", "data"]).exit_code == 0
    unknown = runner.invoke(app, ["models", "rollback", "fraud", "--alias", "canary"])
    assert unknown.exit_code == 2
    assert "no alias 'canary'" in unknown.output
    bad = runner.invoke(app, ["models", "card", "fraud"])
    assert bad.exit_code == 2
    assert "NAME:VERSION" in bad.output
    missing = runner.invoke(app, ["train", "--data", "nowhere"])
    assert missing.exit_code == 2
    assert "has no transactions.parquet" in missing.output
