"""A vectorised simulator of card transactions with fraud and drift.

Randomness is drawn from one generator per purpose and per day, each seeded from the
scenario's seed, so the output depends only on the scenario (not on chunking or timing).
The only Python loop runs over days; each day is generated with whole-array operations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from driftloop.data._scenario import Scenario

__all__ = ["Simulation", "simulate_transactions"]

SECONDS_PER_DAY = 86_400
# Purposes of the random streams; a stream is (seed, purpose, day).
_CUSTOMERS, _TERMINALS, _DAY, _TERMINAL_FRAUD, _CARD_FRAUD, _CARD_TESTING = range(6)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(days_done, days_total)`` while transactions are generated."""

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Simulation:
    """The frames of one simulation and the scenario that made them."""

    scenario: Scenario
    transactions: pd.DataFrame
    customers: pd.DataFrame
    terminals: pd.DataFrame
    labels: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts and fraud rates, overall and per fraud scenario."""
        tx = self.transactions
        n = len(tx)
        by_scenario = tx["fraud_scenario"].value_counts().sort_index()
        return {
            "transactions": n,
            "customers": len(self.customers),
            "terminals": len(self.terminals),
            "days": self.scenario.days,
            "first_transaction": str(tx["tx_datetime"].min()) if n else None,
            "last_transaction": str(tx["tx_datetime"].max()) if n else None,
            "fraud_rate": float(tx["is_fraud"].mean()) if n else 0.0,
            "fraud_rate_by_scenario": {
                _SCENARIO_NAMES[int(k)]: int(v) / n
                for k, v in zip(by_scenario.index.to_numpy(), by_scenario.to_numpy(), strict=True)
                if k != 0
            },
            "expected_fraud_rate_by_scenario": expected_fraud_rates(self.scenario),
        }

    def describe(self) -> dict[str, Any]:
        """The JSON description written beside the Parquet files."""
        from driftloop import __version__

        return {
            "driftloop_version": __version__,
            "scenario": self.scenario.to_dict(),
            "summary": self.summary(),
            "files": {
                "transactions": "transactions.parquet",
                "customers": "customers.parquet",
                "terminals": "terminals.parquet",
                "labels": "labels.parquet",
            },
        }

    def write(self, out: str | Path) -> Path:
        """Write the four Parquet files and ``scenario.json`` into folder ``out``."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("transactions", "customers", "terminals", "labels"):
            frame: pd.DataFrame = getattr(self, name)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, folder / f"{name}.parquet", compression="zstd")
        text = json.dumps(self.describe(), indent=2, sort_keys=True)
        (folder / "scenario.json").write_text(text + "\n", encoding="utf-8")
        return folder


_SCENARIO_NAMES = {
    0: "legitimate",
    1: "amount_over_threshold",
    2: "compromised_terminal",
    3: "compromised_card",
    4: "card_testing",
}


def expected_fraud_rates(scenario: Scenario) -> dict[str, float]:
    """Expected share of all transactions per planted fraud scenario (2 and 3).

    Compromised terminals and cards are drawn uniformly, so in expectation they carry
    their share of the traffic; the share active on day ``d`` grows for the first
    compromise period and then holds. Overlaps between draws are ignored (they are rare).
    """
    days = np.arange(scenario.days)
    active_terminals = scenario.compromised_terminals_per_day * np.minimum(
        days + 1, scenario.terminal_compromise_days
    )
    active_cards = scenario.compromised_customers_per_day * np.minimum(
        days + 1, scenario.customer_compromise_days
    )
    terminal_share = np.minimum(active_terminals / scenario.terminals, 1.0).mean()
    card_share = np.minimum(active_cards / scenario.customers, 1.0).mean() / 3
    return {
        "compromised_terminal": float(terminal_share),
        "compromised_card": float(card_share * (1 - terminal_share)),
    }


def simulate_transactions(
    scenario: Scenario | None = None,
    *,
    progress: ProgressCallback | None = None,
    **params: Any,
) -> Simulation:
    """Simulate a world of card transactions.

    Pass a :class:`Scenario`, or its fields as keywords:

    >>> sim = simulate_transactions(customers=50, terminals=100, days=3, seed=1)
    >>> sim.transactions.columns.tolist()[:4]
    ['tx_id', 'tx_datetime', 'customer_id', 'terminal_id']
    >>> bool((sim.labels["label_known_at"] >= sim.transactions["tx_datetime"]).all())
    True
    """
    if scenario is None:
        scenario = Scenario(**params)
    elif params:
        raise TypeError("pass either a Scenario or its fields, not both")
    customers = _customer_profiles(scenario)
    terminals = _terminal_locations(scenario)
    reach = _terminals_in_reach(customers, terminals, scenario.radius)

    days = []
    for day in range(scenario.days):
        days.append(_one_day(scenario, day, customers, reach))
        if progress is not None:
            progress(day + 1, scenario.days)
    tx = _concat_days(days)
    _plant_fraud(scenario, tx, n_customers=len(customers))
    transactions = _transactions_frame(scenario, tx)
    labels = pd.DataFrame(
        {
            "tx_id": transactions["tx_id"],
            "is_fraud": transactions["is_fraud"],
            "label_known_at": transactions["tx_datetime"]
            + pd.to_timedelta(scenario.label_delay_days, unit="D"),
        }
    )
    return Simulation(
        scenario=scenario,
        transactions=transactions,
        customers=_customers_frame(customers, scenario.age_bands),
        terminals=pd.DataFrame(
            {
                "terminal_id": np.arange(len(terminals), dtype=np.int64),
                "x_terminal": terminals[:, 0],
                "y_terminal": terminals[:, 1],
            }
        ),
        labels=labels,
    )


def _rng(scenario: Scenario, purpose: int, day: int = 0) -> np.random.Generator:
    return np.random.default_rng([scenario.seed, purpose, day])


@dataclass(frozen=True)
class _Customers:
    xy: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    tx_per_day: FloatArray
    age_band: NDArray[np.int64]
    active_from_day: IntArray
    segment: NDArray[np.int8]  # 0 = core, 1 = new (segment drift)

    def __len__(self) -> int:
        return len(self.xy)


def _customer_profiles(scenario: Scenario) -> _Customers:
    rng = _rng(scenario, _CUSTOMERS)
    n_core, n_new = scenario.customers, scenario.new_customers
    n = n_core + n_new
    g = scenario.grid_size
    xy = rng.uniform(0, g, size=(n, 2))
    mean_amount = rng.uniform(5, 100, size=n)
    tx_per_day = rng.uniform(0, 4, size=n)
    # The new segment: big spenders, clustered in the top-right fifth of the grid.
    xy[n_core:] = rng.uniform(0.8 * g, g, size=(n_new, 2))
    mean_amount[n_core:] = rng.uniform(80, 200, size=n_new)
    tx_per_day[n_core:] = rng.uniform(2, 6, size=n_new)
    bands = len(scenario.age_bands)
    weights = np.linspace(2.0, 1.0, bands)
    age_band = rng.choice(bands, size=n, p=weights / weights.sum())
    active_from = np.zeros(n, dtype=np.int64)
    active_from[n_core:] = scenario.drift_at if scenario.drift_at is not None else 0
    segment = np.zeros(n, dtype=np.int8)
    segment[n_core:] = 1
    return _Customers(
        xy=xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        tx_per_day=tx_per_day,
        age_band=age_band.astype(np.int64),
        active_from_day=active_from,
        segment=segment,
    )


def _terminal_locations(scenario: Scenario) -> FloatArray:
    rng = _rng(scenario, _TERMINALS)
    return rng.uniform(0, scenario.grid_size, size=(scenario.terminals, 2))


@dataclass(frozen=True)
class _Reach:
    """Terminals within the radius of each customer, as CSR offsets into ``terminals``."""

    offsets: IntArray
    counts: IntArray
    terminals: IntArray


def _terminals_in_reach(customers: _Customers, terminals: FloatArray, radius: float) -> _Reach:
    from scipy.spatial import cKDTree  # here: a second of import for every CLI start

    tree = cKDTree(terminals)
    lists = tree.query_ball_point(customers.xy, r=radius, return_sorted=True)
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    flat = (
        np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
        if counts.sum()
        else (np.zeros(0, dtype=np.int64))
    )
    return _Reach(offsets=offsets, counts=counts, terminals=flat)


@dataclass
class _Tx:
    day: IntArray
    seconds: IntArray
    customer: IntArray
    terminal: IntArray
    amount: FloatArray
    scenario: NDArray[np.int8]


def _one_day(scenario: Scenario, day: int, c: _Customers, reach: _Reach) -> _Tx:
    rng = _rng(scenario, _DAY, day)
    can_pay = (c.active_from_day <= day) & (reach.counts > 0)
    lam = np.where(can_pay, c.tx_per_day, 0.0)
    counts = rng.poisson(lam)
    customer = np.repeat(np.arange(len(c), dtype=np.int64), counts)
    n = len(customer)
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=n)
    bad = (seconds < 0) | (seconds >= SECONDS_PER_DAY)
    while bad.any():  # redraw times outside the day (a few % of them, shrinking fast)
        seconds[bad] = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=int(bad.sum()))
        bad = (seconds < 0) | (seconds >= SECONDS_PER_DAY)
    mean, std = c.mean_amount[customer], c.std_amount[customer]
    amount = rng.normal(mean, std)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    if scenario.drifts("inflation") and scenario.drift_at is not None and day >= scenario.drift_at:
        amount = amount * scenario.inflation_factor
    pick = np.floor(rng.random(n) * reach.counts[customer]).astype(np.int64)
    terminal = reach.terminals[reach.offsets[customer] + pick]
    tx = _Tx(
        day=np.full(n, day, dtype=np.int64),
        seconds=seconds.astype(np.int64),
        customer=customer,
        terminal=terminal,
        amount=np.round(amount, 2),
        scenario=np.zeros(n, dtype=np.int8),
    )
    if scenario.drifts("concept") and scenario.drift_at is not None and day >= scenario.drift_at:
        tx = _concat_days([tx, _card_testing(scenario, day, c, reach)])
    order = np.lexsort((tx.customer, tx.seconds))
    return _Tx(*(getattr(tx, f)[order] for f in _Tx.__dataclass_fields__))


def _card_testing(scenario: Scenario, day: int, c: _Customers, reach: _Reach) -> _Tx:
    """Bursts of small transactions on stolen cards: the concept-drift fraud pattern."""
    rng = _rng(scenario, _CARD_TESTING, day)
    eligible = np.flatnonzero((c.active_from_day <= day) & (reach.counts > 0))
    k = min(scenario.card_testing_customers_per_day, len(eligible))
    victims = rng.choice(eligible, size=k, replace=False)
    sizes = rng.integers(5, 16, size=k)
    customer = np.repeat(victims, sizes)
    start = rng.uniform(0, SECONDS_PER_DAY - 600, size=k)
    seconds = np.repeat(start, sizes) + rng.uniform(0, 600, size=len(customer))
    pick = np.floor(rng.random(k) * reach.counts[victims]).astype(np.int64)
    terminal = np.repeat(reach.terminals[reach.offsets[victims] + pick], sizes)
    return _Tx(
        day=np.full(len(customer), day, dtype=np.int64),
        seconds=seconds.astype(np.int64),
        customer=customer.astype(np.int64),
        terminal=terminal,
        amount=np.round(rng.uniform(0.5, 5.0, size=len(customer)), 2),
        scenario=np.full(len(customer), 4, dtype=np.int8),
    )


def _concat_days(parts: list[_Tx]) -> _Tx:
    return _Tx(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Tx.__dataclass_fields__))


def _compromised(
    rng_for_day: Callable[[int], np.random.Generator],
    population: int,
    per_day: int,
    duration: int,
    days: int,
) -> NDArray[np.bool_]:
    """``out[i, d]`` is True when member ``i`` is compromised on day ``d``."""
    out = np.zeros((population, days), dtype=np.bool_)
    for day in range(days):
        chosen = rng_for_day(day).choice(population, size=per_day, replace=False)
        out[chosen, day : day + duration] = True
    return out


def _plant_fraud(scenario: Scenario, tx: _Tx, n_customers: int) -> None:
    """Label fraud in place, scenario by scenario; a later scenario takes precedence."""
    tx.scenario[(tx.scenario == 0) & (tx.amount > scenario.amount_threshold)] = 1
    terminal_hit = _compromised(
        lambda d: _rng(scenario, _TERMINAL_FRAUD, d),
        scenario.terminals,
        scenario.compromised_terminals_per_day,
        scenario.terminal_compromise_days,
        scenario.days,
    )[tx.terminal, tx.day]
    tx.scenario[terminal_hit] = 2
    card_hit = _compromised(
        lambda d: _rng(scenario, _CARD_FRAUD, d),
        n_customers,
        scenario.compromised_customers_per_day,
        scenario.customer_compromise_days,
        scenario.days,
    )[tx.customer, tx.day]
    # A third of a compromised card's transactions are fraudulent, with inflated amounts.
    coin = _rng(scenario, _CARD_FRAUD, scenario.days).random(len(tx.day)) < 1 / 3
    stolen = card_hit & coin & (tx.scenario != 4)
    tx.amount[stolen] = np.round(tx.amount[stolen] * 5, 2)
    tx.scenario[stolen] = 3


def _transactions_frame(scenario: Scenario, tx: _Tx) -> pd.DataFrame:
    start = np.datetime64(datetime.combine(scenario.start_date, time()), "us")
    seconds = tx.day * SECONDS_PER_DAY + tx.seconds
    return pd.DataFrame(
        {
            "tx_id": np.arange(len(seconds), dtype=np.int64),
            "tx_datetime": start + seconds.astype("timedelta64[s]"),
            "customer_id": tx.customer,
            "terminal_id": tx.terminal,
            "amount": tx.amount,
            "tx_time_seconds": seconds,
            "tx_time_days": tx.day,
            "is_fraud": (tx.scenario > 0).astype(np.int8),
            "fraud_scenario": tx.scenario,
        }
    )


def _customers_frame(c: _Customers, age_bands: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(c), dtype=np.int64),
            "x_customer": c.xy[:, 0],
            "y_customer": c.xy[:, 1],
            "mean_amount": c.mean_amount,
            "std_amount": c.std_amount,
            "mean_tx_per_day": c.tx_per_day,
            "age_band": np.asarray(age_bands)[c.age_band],
            "segment": np.where(c.segment == 1, "new", "core"),
            "active_from_day": c.active_from_day,
        }
    )
