"""``driftloop predictions show / list``: the audit log read from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.audit import AuditRecord, Label, SqliteAuditLog, label_store
from driftloop.cli import app

runner = CliRunner()
T0 = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)


def _record(i: int, **changes: object) -> AuditRecord:
    fields: dict[str, object] = {
        "prediction_id": f"p{i}",
        "ts": T0 + timedelta(hours=i),
        "model": "loans",
        "version": "3",
        "route": "champion",
        "score": 0.5 + i / 100,
        "decision": "approve" if i % 2 else "review",
        "latency_ms": 1.5,
        "features": {"income": 52000.0 + i, "channel": "web", "region": None},
        "entity_keys": {"applicant_id": str(100 + i % 3), "application_id": f"A{i}"},
        "feature_ts": {"income": T0 - timedelta(days=1)},
        "served_at": T0 + timedelta(hours=i, seconds=3),
        "missing": ("region",),
    }
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose audit log holds ten loans predictions an hour apart (p0..p9;
    applicants 100, 101, 102 in turn), p4 with an explanation and a label, and one
    multiclass prediction of another model."""
    (tmp_path / "driftloop.toml").write_text('[project]\nname = "t"\n')
    log = SqliteAuditLog(tmp_path / ".driftloop" / "audit.db")
    records = [_record(i) for i in range(10)]
    records[4] = _record(4, explanation={"income": -0.42, "channel": 0.17})
    records.append(
        _record(
            20,
            model="segments",
            version="1",
            outputs={"class": "gold", "probabilities": {"gold": 0.7, "silver": 0.3}},
            missing=(),
        )
    )
    log.write(records)
    log.add_labels([Label("p4", 1.0, T0 + timedelta(days=7))])
    labels = label_store(log)
    assert labels is not None
    labels.set_labels([Label("p5", 0.0)], relabel=False, actor="svc", now=T0)
    labels.set_labels([Label("p5", 1.0)], relabel=True, actor="alice", now=T0 + timedelta(days=9))
    log.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_show_prints_everything_the_audit_log_knows_about_one_prediction(project: Path) -> None:
    result = runner.invoke(app, ["predictions", "show", "p4"])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "Prediction p4",
        "2026-03-08 14:00:00 UTC",  # event time
        "2026-03-08 14:00:03 UTC",  # served at
        "loans:3",
        "champion",
        "0.5400",
        "review",
        "1 (at 2026-03-15 10:00:00 UTC)",  # the label and when it came
        "applicant_id=101, application_id=A4",
        "Features the model saw",
        "52004.0",
        "2026-03-07 10:00:00",  # the enriched feature's time
        "missing",
        "Explanation",
        "-0.4200",
    ):
        assert expected in out, (expected, out)
    # The explanation lists the largest contribution first.
    assert out.index("-0.4200") < out.index("+0.1700")


def test_show_json_is_the_whole_record_for_scripts(project: Path) -> None:
    result = runner.invoke(app, ["predictions", "show", "p20", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["model"] == "segments"
    assert record["outputs"] == {"class": "gold", "probabilities": {"gold": 0.7, "silver": 0.3}}
    assert record["ts"] == "2026-03-09T06:00:00+00:00"
    assert record["features"] == {"income": 52020.0, "channel": "web", "region": None}
    assert record["label"] is None
    shown = runner.invoke(app, ["predictions", "show", "p20"])
    assert "gold (0.7000)" in shown.output
    assert "not known yet" in shown.output
    assert record["relabels"] == []


def test_show_lists_every_relabel_with_who_and_when(project: Path) -> None:
    result = runner.invoke(app, ["predictions", "show", "p5", "--json"])
    assert json.loads(result.output)["relabels"] == [
        {"ts": "2026-03-17T10:00:00+00:00", "old_label": 0.0, "new_label": 1.0, "actor": "alice"}
    ]
    shown = runner.invoke(app, ["predictions", "show", "p5"]).output
    assert "Relabels" in shown
    assert "alice" in shown
    assert "2026-03-17 10:00:00" in shown


def test_list_shows_a_models_latest_predictions_first_within_since_and_until(
    project: Path,
) -> None:
    result = runner.invoke(
        app,
        ["predictions", "list", "--model", "loans", "--since", "2026-03-08T12:00",
         "--until", "2026-03-08T16:00Z"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ids = [line.split()[2] for line in result.output.splitlines() if line.startswith("2026-")]
    assert ids == ["p5", "p4", "p3", "p2"], result.output
    assert "p20" not in result.output  # another model's


def test_list_json_limit_and_entity_filters(project: Path) -> None:
    result = runner.invoke(
        app, ["predictions", "list", "-m", "loans", "--entity", "applicant_id=101", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["prediction_id"] for r in rows] == ["p7", "p4", "p1"]
    assert rows[1]["label"] == 1.0
    assert rows[1]["missing"] == ["region"]
    assert rows[1]["features"]["income"] == 52004.0
    assert rows[1]["ts"] == "2026-03-08T14:00:00+00:00"
    both = runner.invoke(
        app,
        ["predictions", "list", "--entity", "applicant_id=101", "--entity",
         "application_id=A4", "--json"],
    )  # fmt: skip
    assert [r["prediction_id"] for r in json.loads(both.output)] == ["p4"]
    # A naive --since (UTC) with an aware --until, through the entity index.
    window = runner.invoke(
        app,
        ["predictions", "list", "--entity", "applicant_id=101", "--since", "2026-03-08T12:00",
         "--until", "2026-03-08T18:00+01:00", "--json"],
    )  # fmt: skip
    assert window.exit_code == 0, window.output
    assert [r["prediction_id"] for r in json.loads(window.output)] == ["p4"]
    latest = runner.invoke(app, ["predictions", "list", "-m", "loans", "--limit", "2"])
    assert "p9" in latest.output
    assert "p7" not in latest.output
    assert "The latest 2 of 10" in latest.output


def test_list_reads_the_audit_log_of_the_settings_given_by_config(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    config = str(project / "driftloop.toml")
    result = runner.invoke(app, ["predictions", "list", "-m", "segments", "--config", config])
    assert result.exit_code == 0, result.output
    assert "p20" in result.output
    assert "gold (0.7000)" in result.output


def test_bad_input_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["predictions", "show", "nope"])
    assert unknown.exit_code == 2
    assert "Prediction 'nope' is not in the audit log." in unknown.output
    bad_entity = runner.invoke(app, ["predictions", "list", "--entity", "applicant_id"])
    assert bad_entity.exit_code == 2
    assert "is not KEY=VALUE" in bad_entity.output
    bad_time = runner.invoke(app, ["predictions", "list", "--since", "yesterday"])
    assert bad_time.exit_code == 2
    assert "--since 'yesterday' is not an ISO date or time" in bad_time.output
    nothing = runner.invoke(app, ["predictions", "list", "-m", "nope"])
    assert nothing.exit_code == 0
    assert "No predictions of model 'nope'" in nothing.output


def test_a_project_that_never_served_says_so_and_makes_no_audit_file(tmp_path: Path) -> None:
    (tmp_path / "driftloop.toml").write_text('[project]\nname = "t"\n')
    result = runner.invoke(
        app, ["predictions", "list", "--config", str(tmp_path / "driftloop.toml")]
    )
    assert result.exit_code == 2
    assert "There is no audit log at" in " ".join(result.output.split())
    assert not (tmp_path / ".driftloop" / "audit.db").exists()


def test_compact_applies_the_retention_policy_and_show_still_finds_old_ones(
    project: Path,
) -> None:
    refused = runner.invoke(app, ["predictions", "compact"])
    assert refused.exit_code != 0
    assert "hot_days" in refused.output
    (project / "driftloop.toml").write_text(
        '[project]\nname = "t"\n'
        '\n[audit]\nurl = "sqlite:///.driftloop/audit.db?archive=cold"\n'
        "\n[audit.retention]\nhot_days = 1\n"
    )
    result = runner.invoke(app, ["predictions", "compact"])
    assert result.exit_code == 0, result.output
    assert "11 prediction(s) compacted" in result.output  # all of them are from March
    assert list((project / "cold").glob("date=*/part-*.parquet"))
    shown = runner.invoke(app, ["predictions", "show", "p4", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["label"] == 1.0
