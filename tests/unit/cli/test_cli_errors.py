"""Obviously bad input on the command line is one error message (exit 2), never a
traceback, and says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from driftloop.cli import app
from tabular_world import model_toml, table

runner = CliRunner()


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project just made by ``driftloop init``: no model section, no data."""
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    monkeypatch.chdir(tmp_path / "p")
    return tmp_path / "p"


@pytest.fixture(scope="module")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    (folder / "data").mkdir()
    table("binary", rows=2_000).to_csv(folder / "data" / "applications.csv", index=False)
    (folder / "driftloop.toml").write_text(model_toml("binary", name="loans"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("USER", "tester")
        result = runner.invoke(app, ["train", "--promote"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def trained(_trained_once: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with loans:1 as champion (trained once for the module)."""
    monkeypatch.chdir(_trained_once)
    monkeypatch.setenv("USER", "tester")
    return _trained_once


def _one_error(result: Result) -> str:
    """The output of a command that failed with one driftloop error, on one line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return " ".join(result.output.split())


def test_train_in_a_fresh_project_says_to_add_a_model_section_or_pass_data(fresh: Path) -> None:
    said = _one_error(runner.invoke(app, ["train"]))
    assert "[models.NAME] section to driftloop.toml" in said
    assert "docs/your-data.md" in said
    assert "--data FILE --label COLUMN" in said


def test_train_on_a_missing_path_names_the_path_given(fresh: Path) -> None:
    said = _one_error(runner.invoke(app, ["train", "--data", "/nonexistent", "--label", "y"]))
    assert "Training data /nonexistent does not exist" in said
    assert "./data" not in said


def test_train_of_a_model_without_data_names_the_section_to_set(fresh: Path) -> None:
    said = _one_error(runner.invoke(app, ["train", "nope"]))
    assert "[models.nope]" in said
    assert "--data" in said


def test_score_of_an_unknown_model_names_the_known_ones(trained: Path) -> None:
    said = _one_error(runner.invoke(app, ["score", "nope", "--data", "x.csv"]))
    assert "No model named 'nope'" in said
    assert "Known: loans" in said


def test_score_of_a_missing_file_calls_it_data_to_score_not_training_data(trained: Path) -> None:
    said = _one_error(runner.invoke(app, ["score", "loans", "--data", "/nonexistent.csv"]))
    assert "Data to score /nonexistent.csv does not exist" in said


def test_score_writes_into_a_folder_that_does_not_exist_yet(trained: Path) -> None:
    out = trained / "new" / "folder" / "scores.parquet"
    result = runner.invoke(app, ["score", "loans", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_include_on_the_command_line_replaces_the_sections_exclude(trained: Path) -> None:
    # The section has exclude = ["applicant_id"]; --include chooses the columns instead,
    # so the run gets as far as reading the (missing) data.
    said = _one_error(
        runner.invoke(app, ["train", "loans", "--include", "income", "--data", "nowhere.csv"])
    )
    assert "give include or exclude" not in said
    assert "Training data nowhere.csv does not exist" in said


def test_history_of_an_unknown_model_is_an_error_not_silence(trained: Path) -> None:
    said = _one_error(runner.invoke(app, ["models", "history", "nope"]))
    assert "No model named 'nope'" in said
    quiet = runner.invoke(app, ["models", "history", "loans", "--alias", "canary"])
    assert quiet.exit_code == 0
    assert "Alias 'canary' of model 'loans' has never been set." in quiet.output
