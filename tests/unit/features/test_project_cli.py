"""``driftloop features ...`` on a project made by ``driftloop init`` with simulated data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.core.config import load_settings
from driftloop.features import FeatureStore, load_definitions, transaction_feature_names

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fraud")
    assert runner.invoke(app, ["init", str(folder), "--example", "fraud"]).exit_code == 0
    args = ["simulate", "--out", str(folder / "data"), "--days", "12"]
    args += ["--customers", "200", "--terminals", "300"]
    assert runner.invoke(app, args).exit_code == 0
    return folder


def run(project: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["features", *args, "--config", str(project / "driftloop.toml")])
    return result.exit_code, " ".join(result.output.split())  # undo rich's line wrapping


def test_template_features_give_a_labelled_training_frame(project: Path) -> None:
    settings = load_settings(project / "driftloop.toml")
    store = FeatureStore(settings, definitions=load_definitions(project / "features.py"))
    tx = pd.read_parquet(project / "data" / "transactions.parquet")
    entity = tx[["tx_id", "tx_datetime", "customer_id", "terminal_id", "amount", "is_fraud"]]
    frame = store.training_frame(entity, transaction_feature_names(), timestamp_field="tx_datetime")
    assert len(frame) == len(tx)
    assert frame["is_fraud"].tolist() == tx["is_fraud"].tolist()
    # windows cover the events before a row's time, never its own transaction: a card's
    # first transaction has nothing to count (as when it is served, before it is pushed)
    first = frame["tx_datetime"] == frame.groupby("customer_id")["tx_datetime"].transform("min")
    assert (frame.loc[first, "customer_count_7d"] == 0).all()
    assert (frame.loc[~first, "customer_count_7d"] >= 0).all()
    assert frame["customer_count_24h"].max() >= 1
    # labels arrive 7 days late: nothing is known about fraud in the first week
    first_week = frame["tx_datetime"] < frame["tx_datetime"].min() + pd.Timedelta(days=7)
    assert (frame.loc[first_week, "terminal_labelled_30d"] == 0).all()
    store.close()


def test_apply_prints_a_diff_and_records_versions(project: Path) -> None:
    code, out = run(project, "apply")
    assert code == 0, out
    assert "+ stream_feature_view customer_tx" in out
    code, out = run(project, "apply")
    assert code == 0
    assert "= stream_feature_view customer_tx" in out
    assert "(0 changed)" in out


def test_incompatible_type_change_is_refused_unless_new_version(
    project: Path, tmp_path: Path
) -> None:
    assert run(project, "apply")[0] == 0
    edited = (
        (project / "features.py")
        .read_text()
        .replace(
            'function=lambda df: df["amount"] / df["customer_amount_mean_7d"],',
            'function=lambda df: df["amount"] / df["customer_amount_mean_7d"],\n    dtype="int64",',
        )
    )
    file = tmp_path / "features.py"
    file.write_text(edited)
    code, out = run(project, "apply", "--file", str(file))
    assert code == 2
    assert "changes the type of 'amount_over_customer_mean_7d' from float64 to int64" in out
    code, out = run(project, "apply", "--file", str(file), "--new-version")
    assert code == 0, out
    assert "~ on_demand_feature amount_over_customer_mean_7d" in out


def test_materialize_and_stats_commands(project: Path) -> None:
    code, out = run(project, "materialize", "--end", "2025-01-13")
    assert code == 0, out
    assert "customer_tx" in out
    code, out = run(project, "stats", "customer_tx", "--history")
    assert code == 0, out
    assert "amount" in out
    assert "Per materialization" in out


def test_stats_of_an_unknown_view_lists_the_known_ones(project: Path) -> None:
    code, out = run(project, "stats", "nope")
    assert code == 2
    assert "Known: customer_tx" in out


def test_demo_store_over_any_folder_matches_the_template(project: Path) -> None:
    from driftloop.features import SqliteOnlineStore, transaction_feature_store

    tx = pd.read_parquet(project / "data" / "transactions.parquet").iloc[-500:]
    entity = tx[["tx_datetime", "customer_id", "terminal_id", "amount"]]
    names = transaction_feature_names()
    demo = transaction_feature_store(project / "data", online_store=SqliteOnlineStore(":memory:"))
    template = FeatureStore(definitions=load_definitions(project / "features.py"), root=project)
    ours = demo.training_frame(entity, names, timestamp_field="tx_datetime")
    theirs = template.training_frame(entity, names, timestamp_field="tx_datetime")
    pd.testing.assert_frame_equal(ours, theirs)
    # what a server scoring the last transaction sees: every event before it, read then
    end = tx["tx_datetime"].max()
    demo.materialize_incremental(end.to_pydatetime(), progress=False)
    last = tx.iloc[-1]
    online = demo.online_features(
        names,
        [{"customer_id": last["customer_id"], "terminal_id": last["terminal_id"], "amount": 9.0}],
        as_of=end.to_pydatetime(),
    )
    row = ours.iloc[-1]
    assert online.values["customer_count_24h"] == [row["customer_count_24h"]]
    assert online.values["terminal_count_7d"] == [row["terminal_count_7d"]]
