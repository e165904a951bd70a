from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.monitoring import Reference, realized_performance
from driftloop.stats import Profile

runner = CliRunner()


def _records(n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    day = np.repeat(np.arange(3), n // 3)
    x = rng.normal(0, 1, n) + (day == 2) * 1.5
    score = 1 / (1 + np.exp(-(x - 2)))
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "ts": pd.Timestamp("2025-05-01", tz="UTC") + pd.to_timedelta(day, unit="D"),
            "model": "fraud",
            "version": 1,
            "route": "champion",
            "score": score,
            "decision": "approve",
            "label": (rng.random(n) < score).astype(float),
            "x": x,
        }
    )


def test_monitor_run_once_then_report_writes_a_page(tmp_path: Path) -> None:
    records = _records()
    records.to_parquet(tmp_path / "records.parquet")
    first = records[records["ts"] < pd.Timestamp("2025-05-02", tz="UTC")]
    reference = Reference(
        Profile.from_frame(first[["x"]], predictions=first["score"].to_numpy()),
        realized_performance(first["score"].to_numpy(), first["label"].to_numpy(), threshold=0.5),
    )
    ref_file = tmp_path / "ref.json"
    ref_file.write_text(json.dumps({"model": "fraud", "version": 1, **reference.to_dict()}))
    env = {"DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}"}

    def run_once(config: Path):
        args = [
            "monitor",
            "run",
            "--once",
            "--records",
            str(tmp_path / "records.parquet"),
            "--reference",
            str(ref_file),
            "--now",
            "2025-05-04",
            "--config",
            str(config),
        ]
        return runner.invoke(app, args, env=env)

    result = run_once(tmp_path / "none.toml")
    assert result.exit_code == 2, result.output  # a missing settings file is refused
    (tmp_path / "driftloop.toml").write_text(
        f'[monitoring]\nalerts = ["file:{tmp_path / "alerts.jsonl"}"]\n'
    )
    result = run_once(tmp_path / "driftloop.toml")
    assert result.exit_code == 0, result.output
    assert "3 window(s) assessed" in result.output
    assert "data-drift" in result.output
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "monitor",
            "report",
            "--model",
            "fraud",
            "--out",
            str(out),
            "--config",
            str(tmp_path / "driftloop.toml"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text()


def test_monitor_report_of_an_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "driftloop.toml").write_text("")
    result = runner.invoke(
        app,
        ["monitor", "report", "--model", "nope", "--config", str(tmp_path / "driftloop.toml")],
        env={"DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}"},
    )
    assert result.exit_code == 2
    assert "nope" in result.output


def test_monitor_compare_prints_the_drifted_feature(tmp_path: Path) -> None:
    records = _records()
    records[records["ts"].dt.day == 1].to_parquet(tmp_path / "ref.parquet")
    records[records["ts"].dt.day == 3].to_parquet(tmp_path / "cur.parquet")
    (tmp_path / "driftloop.toml").write_text("")
    result = runner.invoke(
        app,
        [
            "monitor",
            "compare",
            str(tmp_path / "ref.parquet"),
            str(tmp_path / "cur.parquet"),
            "--out",
            str(tmp_path / "c.html"),
            "--config",
            str(tmp_path / "driftloop.toml"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "data-drift" in result.output
    assert (tmp_path / "c.html").exists()


def test_monitor_run_in_a_project_without_models_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "driftloop.toml").write_text("")
    result = runner.invoke(
        app,
        ["monitor", "run", "--once", "--config", str(tmp_path / "driftloop.toml")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "No model to monitor" in result.output


def _reference_file(tmp_path: Path, records: pd.DataFrame) -> Path:
    first = records[records["ts"] < pd.Timestamp("2025-05-02", tz="UTC")]
    reference = Reference(
        Profile.from_frame(first[["x"]], predictions=first["score"].to_numpy()),
        realized_performance(first["score"].to_numpy(), first["label"].to_numpy(), threshold=0.5),
    )
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"model": "fraud", "version": 1, **reference.to_dict()}))
    return path


def test_a_run_that_assesses_nothing_says_why_and_what_to_do(tmp_path: Path) -> None:
    # The README tour's situation: a few predictions served today, the day not over.
    records = _records()
    ref_file = _reference_file(tmp_path, records)
    today = records.head(37).assign(ts=pd.Timestamp("2025-05-04 10:00", tz="UTC"))
    today.to_parquet(tmp_path / "today.parquet")
    (tmp_path / "driftloop.toml").write_text("")
    env = {"DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}", "COLUMNS": "300"}

    def run(*extra: str):
        args = [
            *("monitor", "run", "--once", "--records", str(tmp_path / "today.parquet")),
            *("--reference", str(ref_file), "--config", str(tmp_path / "driftloop.toml")),
            *extra,
        ]
        return runner.invoke(app, args, env=env)

    waiting = run("--now", "2025-05-04T14:00")
    assert waiting.exit_code == 0, waiting.output
    assert "0 window(s) assessed" in waiting.output
    assert "the newest records are from 2025-05-04 10:00 UTC" in waiting.output
    assert "window 2025-05-04 00:00 to 2025-05-05 00:00 UTC" in waiting.output
    assert "--partial" in waiting.output

    partial = run("--now", "2025-05-04T14:00", "--partial")
    assert partial.exit_code == 0, partial.output
    assert "1 window(s) assessed" in partial.output
    assert "37 record(s), fewer than monitoring.min_rows 200" in partial.output
    assert "lower min_rows" in partial.output

    again = run("--now", "2025-05-04T14:00", "--partial")
    assert "1 window(s) assessed before, no new records or labels since" in again.output
    assert "driftloop monitor report --model fraud" in again.output

    too_early = run("--now", "2025-04-01T00:00")
    assert "fraud: no records from 2025-03-18 00:00 to 2025-04-01 00:00 UTC" in too_early.output
    assert "37 record(s) are later, from 2025-05-04 10:00" in too_early.output
    assert "pass --now" in too_early.output

    page = tmp_path / "report.html"
    report = runner.invoke(
        app,
        [
            *("monitor", "report", "--model", "fraud", "--out", str(page)),
            *("--config", str(tmp_path / "driftloop.toml")),
        ],
        env=env,
    )
    assert report.exit_code == 0, report.output  # the partial window is stored


def test_monitor_compare_of_a_missing_or_unreadable_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "driftloop.toml").write_text("")
    (tmp_path / "notes.txt").write_text("not parquet")
    config = ["--config", str(tmp_path / "driftloop.toml")]
    env = {"COLUMNS": "300"}

    missing = runner.invoke(
        app, ["monitor", "compare", "/nope.parquet", "/x.parquet", *config], env=env
    )
    assert missing.exit_code == 2
    assert isinstance(missing.exception, SystemExit)  # an error message, not a traceback
    assert "error (not-found): Reference file /nope.parquet does not exist." in missing.output

    unreadable = runner.invoke(
        app, ["monitor", "compare", str(tmp_path / "notes.txt"), "/x.parquet", *config], env=env
    )
    assert unreadable.exit_code == 2
    assert f"Reference file {tmp_path / 'notes.txt'} is not a readable Parquet" in (
        unreadable.output
    )

    records = runner.invoke(
        app, ["monitor", "run", "--once", "--records", "/nope.parquet", *config], env=env
    )
    assert records.exit_code == 2
    assert "--records /nope.parquet does not exist." in records.output


def test_monitor_learn_keeps_a_reference_period_that_monitor_run_then_judges_by(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    n, days = 1_000, 9
    day = np.repeat(np.arange(days), n)
    x = rng.normal(0, 1, n * days) + (day == days - 1) * 0.5  # the last day moves a little
    score = 1 / (1 + np.exp(-(x - 1)))
    records = pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n * days)],
            "ts": pd.Timestamp("2025-05-01", tz="UTC") + pd.to_timedelta(day * 86_400 + 1, "s"),
            "model": "fraud",
            "version": 1,
            "route": "champion",
            "score": score,
            "decision": "approve",
            "label": (rng.random(n * days) < score).astype(float),
            "x": x,
        }
    )
    records.to_parquet(tmp_path / "records.parquet")
    reference = Reference(Profile.from_frame(records[["x"]].iloc[:n]))
    ref_file = tmp_path / "ref.json"
    ref_file.write_text(json.dumps({"model": "fraud", "version": 1, **reference.to_dict()}))
    config = tmp_path / "driftloop.toml"
    config.write_text('[monitoring]\nthresholds = "learned"\nalerts = []\n')
    env = {"DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}"}
    offline = ["--records", str(tmp_path / "records.parquet"), "--reference", str(ref_file)]
    learn = ["monitor", "learn", "-m", "fraud", "--version", "1", *offline]
    period = ["--from", "2025-05-01", "--to", "2025-05-08", "--config", str(config)]
    result = runner.invoke(app, [*learn, *period], env=env)
    assert result.exit_code == 0, result.output
    assert "Learned the reference of fraud v1 (champion)" in result.output
    assert "learned on 7 reference windows" in result.output
    assert "scores calibrated" in result.output
    run = ["monitor", "run", "--once", *offline, "--now", "2025-05-10", "--config", str(config)]
    result = runner.invoke(app, run, env=env)
    assert result.exit_code == 0, result.output
    assert "thresholds: learned bands" in result.output
    assert "estimated ROC AUC" in result.output
    assert "data-drift" in result.output  # PSI of x ~0.25 on the last day, past its band
    too_short = ["--from", "2025-05-01", "--to", "2025-05-03", "--config", str(config)]
    result = runner.invoke(app, [*learn, *too_short], env=env)
    assert result.exit_code != 0
    assert "monitoring.reference_windows 6" in result.output
