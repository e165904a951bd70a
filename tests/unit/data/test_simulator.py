from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.core import InvalidParameterError
from driftloop.data import Scenario, expected_fraud_rates, simulate_transactions

BASE = {"customers": 2_000, "terminals": 4_000, "days": 60, "seed": 3}


@pytest.fixture(scope="module")
def plain() -> pd.DataFrame:
    return simulate_transactions(**BASE).transactions


def test_fraud_rates_per_scenario_are_near_the_configured_ones(plain: pd.DataFrame) -> None:
    expected = expected_fraud_rates(Scenario(**BASE))
    observed = plain["fraud_scenario"].value_counts(normalize=True)
    # Which terminals and cards are compromised is random, so allow a relative 35%.
    assert observed[2] == pytest.approx(expected["compromised_terminal"], rel=0.35)
    assert observed[3] == pytest.approx(expected["compromised_card"], rel=0.35)
    # Handbook-like overall fraud rate: around one percent.
    assert 0.004 < plain["is_fraud"].mean() < 0.02


def test_every_amount_over_the_threshold_is_fraud(plain: pd.DataFrame) -> None:
    assert plain.loc[plain["amount"] > 220, "is_fraud"].all()
    assert set(plain.loc[plain["fraud_scenario"] == 1, "amount"].gt(220)) == {True}


def test_compromised_card_fraud_has_inflated_amounts(plain: pd.DataFrame) -> None:
    card = plain[plain["fraud_scenario"] == 3]["amount"].median()
    legit = plain[plain["fraud_scenario"] == 0]["amount"].median()
    assert card > 3 * legit


def test_customers_only_pay_at_terminals_within_their_radius() -> None:
    sim = simulate_transactions(**BASE)
    tx = sim.transactions.merge(sim.customers, on="customer_id").merge(
        sim.terminals, on="terminal_id"
    )
    dist = np.hypot(tx["x_customer"] - tx["x_terminal"], tx["y_customer"] - tx["y_terminal"])
    assert (dist <= 5.0).all()


def test_transactions_are_chronological_and_ids_follow_time(plain: pd.DataFrame) -> None:
    assert plain["tx_datetime"].is_monotonic_increasing
    assert (plain["tx_id"].to_numpy() == np.arange(len(plain))).all()
    assert plain["tx_time_days"].between(0, 59).all()


def test_concept_drift_starts_on_the_chosen_day_and_not_before() -> None:
    tx = simulate_transactions(**BASE, drift_at=35, drift=("concept",)).transactions
    testing_days = tx.loc[tx["fraud_scenario"] == 4, "tx_time_days"]
    assert testing_days.min() == 35
    assert set(testing_days) == set(range(35, 60))
    small = tx["amount"] < 5
    before = tx.loc[small & (tx["tx_time_days"] < 35), "is_fraud"].mean()
    after = tx.loc[small & (tx["tx_time_days"] >= 35), "is_fraud"].mean()
    assert after > 5 * max(before, 1e-3)


def test_days_before_drift_are_identical_to_the_world_without_drift(
    plain: pd.DataFrame,
) -> None:
    drifted = simulate_transactions(**BASE, drift_at=35, drift=("inflation",)).transactions
    cols = ["tx_datetime", "customer_id", "terminal_id", "amount"]
    before_plain = plain.loc[plain["tx_time_days"] < 35, cols].reset_index(drop=True)
    before_drift = drifted.loc[drifted["tx_time_days"] < 35, cols].reset_index(drop=True)
    # Only compromised-card fraud (chosen the same way) could differ: it multiplies amounts.
    pd.testing.assert_frame_equal(before_plain, before_drift)


def test_inflation_drift_raises_amounts_from_the_chosen_day() -> None:
    tx = simulate_transactions(**BASE, drift_at=30, drift=("inflation",)).transactions
    legit = tx[tx["fraud_scenario"] == 0]
    daily = legit.groupby("tx_time_days")["amount"].median()
    assert daily.loc[30:].min() > daily.loc[:29].max()


def test_new_segment_starts_transacting_on_the_drift_day() -> None:
    sim = simulate_transactions(**BASE, drift_at=40, drift=("segment",))
    new = sim.customers.loc[sim.customers["segment"] == "new", "customer_id"]
    assert len(new) == 400
    days = sim.transactions.loc[sim.transactions["customer_id"].isin(new), "tx_time_days"]
    assert days.min() == 40


def test_labels_never_become_known_before_their_transaction() -> None:
    sim = simulate_transactions(**BASE, label_delay_days=3)
    joined = sim.labels.merge(sim.transactions, on="tx_id")
    delay = joined["label_known_at"] - joined["tx_datetime"]
    assert (delay >= pd.Timedelta(0)).all()
    assert (delay == pd.Timedelta(days=3)).all()
    assert (joined["is_fraud_x"] == joined["is_fraud_y"]).all()


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    params = {**BASE, "days": 10, "drift_at": 5, "drift": ("concept", "segment")}
    a = simulate_transactions(**params).write(tmp_path / "a")
    b = simulate_transactions(**params).write(tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == [
        "customers.parquet",
        "labels.parquet",
        "scenario.json",
        "terminals.parquet",
        "transactions.parquet",
    ]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_another_seed_gives_another_world() -> None:
    a = simulate_transactions(**{**BASE, "days": 5}).transactions
    b = simulate_transactions(**{**BASE, "days": 5, "seed": 4}).transactions
    assert not a["amount"].equals(b["amount"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"drift": ("concept",)}, "drift_at"),
        ({"drift_at": 60, "drift": ("concept",)}, "drift_at"),
        ({"drift_at": 3, "drift": ("weather",)}, "drift"),
        ({"label_delay_days": -1}, "label_delay_days"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"'{field}'"):
        Scenario(**{**BASE, **params})  # type: ignore[arg-type]
