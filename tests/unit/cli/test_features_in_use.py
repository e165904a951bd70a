"""``driftloop features apply`` refuses to remove what a registered model was trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.data import simulate_transactions

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert runner.invoke(app, ["init", str(tmp_path), "--example", "fraud"]).exit_code == 0
    simulate_transactions(customers=300, terminals=600, days=40, seed=7).write(tmp_path / "data")
    text = (tmp_path / "driftloop.toml").read_text()
    (tmp_path / "driftloop.toml").write_text(
        text.replace(
            "[models.fraud.gates]\n",
            "[models.fraud.gates]\nmax_equal_opportunity_difference = 1.0\nmax_ece = 0.5\n"
            "max_latency_ms = 10000.0\n",
        ).replace(
            'store_features = ["*"]',
            'store_features = ["customer_count_1h", "terminal_fraud_rate_30d"]',
        )
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def apply(project: Path, text: str, *flags: str) -> tuple[int, str]:
    (project / "features.py").write_text(text)
    result = runner.invoke(app, ["features", "apply", *flags])
    return result.exit_code, " ".join(result.output.split())  # undo rich's line wrapping


def without(text: str, feature: str) -> str:
    """The definitions without the window aggregation named ``feature``."""
    lines = [
        line
        for line in text.splitlines(keepends=True)
        if not ("Aggregation(" in line and f'"{feature}"' in line)
    ]
    assert len(lines) == len(text.splitlines()) - 1, feature
    return "".join(lines)


def test_removing_a_feature_a_registered_model_uses_is_refused_unless_new_version(
    project: Path,
) -> None:
    template = (project / "features.py").read_text()
    assert apply(project, template)[0] == 0
    trained = runner.invoke(app, ["train", "fraud"])
    assert trained.exit_code == 0, trained.output

    # A feature no registered model reads goes without ceremony.
    code, out = apply(project, without(template, "customer_amount_max_24h"))
    assert code == 0, out
    assert "- customer_amount_max_24h" in out

    code, out = apply(project, without(template, "customer_count_1h"))
    assert code == 2
    assert "customer_tx: removes feature 'customer_count_1h', used by a registered model" in out
    # an input of an on-demand feature the model uses is in use too
    code, out = apply(project, without(template, "terminal_labelled_30d"))
    assert code == 2
    assert "removes feature 'terminal_labelled_30d', used by a registered model" in out

    code, out = apply(project, without(template, "customer_count_1h"), "--new-version")
    assert code == 0, out
    assert "- customer_count_1h" in out
