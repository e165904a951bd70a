from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.audit import open_audit_log
from driftloop.cli import app
from driftloop.core.config import load_settings
from tabular_world import model_toml, table

runner = CliRunner()


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_backtest_audit_keeps_the_outputs_monitoring_judges_a_window_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    # Without a multiclass model's probabilities, a backtest window had no log loss and
    # no accuracy: concept drift could not be called.
    (tmp_path / "data").mkdir()
    rows = table(task, rows=1_500, days=10)
    rows.to_csv(tmp_path / "data" / "applications.csv", index=False)
    (tmp_path / "driftloop.toml").write_text(  # the model, and its audit rows, are acme's
        '[project]\ntenant = "acme"\n\n'
        + model_toml(task, name="m")
        + "params = {n_estimators = 20}\n"
    )
    monkeypatch.chdir(tmp_path)
    trained = runner.invoke(app, ["train", "--end", "2026-03-08", "--promote"])
    assert trained.exit_code == 0, trained.output
    later = tmp_path / "later.csv"
    rows[rows["applied_at"] >= pd.Timestamp("2026-03-08")].to_csv(later, index=False)
    out = tmp_path / "scored.parquet"
    scored = runner.invoke(app, ["score", "m", "--data", str(later), "--audit", "--out", str(out)])
    assert scored.exit_code == 0, scored.output

    expected = pd.read_parquet(out)
    settings = load_settings(root=tmp_path, environ={})
    log = open_audit_log(settings.audit.url, root=settings.root)
    try:
        audited = log.window(
            pd.Timestamp("2026-03-01", tz="UTC"), pd.Timestamp("2026-04-01", tz="UTC")
        )
    finally:
        log.close()
    audited = audited.sort_values("ts").reset_index(drop=True)
    assert len(audited) == len(expected)
    assert set(audited["tenant"]) == {"acme"}
    if task == "multiclass":
        assert list(audited["outputs"].map(lambda o: o["class"])) == list(expected["class"])
        for name in ("basic", "plus", "pro"):
            got = audited["outputs"].map(lambda o, n=name: o["probabilities"][n])
            assert got.to_numpy() == pytest.approx(expected[f"probability:{name}"].to_numpy())
    else:
        got = audited["outputs"].map(lambda o: o["value"])
        assert got.to_numpy() == pytest.approx(expected["value"].to_numpy())
    nulls = expected.index[
        rows.loc[rows["applied_at"] >= pd.Timestamp("2026-03-08"), "income"].isna().to_numpy()
    ]
    assert all("income" in audited.loc[i, "missing"] for i in nulls)
