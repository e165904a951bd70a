"""The demo's fraud story: simulated card transactions with a new fraud pattern (card
testing) from the drift day, and per-row features computed from each card's and each
terminal's history (only labels already known count).

>>> story = fraud_story(customers=60, terminals=120, days=6, drift_day=3, seed=1)
>>> story.rows.columns[:3].tolist(), story.label, story.drift_day
(['tx_id', 'tx_datetime', 'amount'], 'is_fraud', 3)
>>> bool((story.rows["label_known_at"] > story.rows["tx_datetime"]).all())
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.data._scenario import Scenario
from driftloop.data._simulator import simulate_transactions
from driftloop.data._story import LABEL_KNOWN_AT, StoryData

__all__ = ["FRAUD_STORY_FEATURES", "fraud_story"]

FRAUD_STORY_FEATURES = (
    "amount",
    "hour",
    "is_night",
    "card_tx_count_1h",
    "card_tx_count_1d",
    "card_mean_amount_7d",
    "amount_over_card_mean_7d",
    "terminal_tx_count_1d",
    "terminal_fraud_rate_28d",
)


def fraud_story(
    *,
    customers: int = 1_000,
    terminals: int = 2_000,
    days: int = 60,
    drift_day: int = 35,
    label_delay_days: float = 0.5,
    seed: int = 7,
) -> StoryData:
    """Card transactions over ``days`` with card-testing fraud from ``drift_day``; each
    label known ``label_delay_days`` after its transaction."""
    sim = simulate_transactions(
        Scenario(
            customers=customers,
            terminals=terminals,
            days=days,
            seed=seed,
            drift_at=drift_day,
            drift=("concept",),
            label_delay_days=label_delay_days,
        )
    )
    tx = sim.transactions.merge(sim.labels[["tx_id", LABEL_KNOWN_AT]], on="tx_id")
    tx = tx.sort_values(["tx_datetime", "tx_id"], kind="stable").reset_index(drop=True)
    rows = _features(tx)
    return StoryData(
        model="fraud",
        task="binary",
        rows=rows,
        features=FRAUD_STORY_FEATURES,
        label="is_fraud",
        timestamp="tx_datetime",
        id="tx_id",
        start=pd.Timestamp(sim.scenario.start_date),
        days=days,
        drift_day=drift_day,
        drift="card testing: bursts of small payments on stolen cards, a fraud pattern "
        "the model never saw",
    )


def _features(tx: pd.DataFrame) -> pd.DataFrame:
    ts = tx["tx_datetime"]
    frame = pd.DataFrame(
        {
            "tx_id": tx["tx_id"].to_numpy(),
            "tx_datetime": ts.to_numpy(),
            "amount": tx["amount"].to_numpy(dtype=np.float64),
            "hour": ts.dt.hour.to_numpy(dtype=np.float64),
            "is_night": (ts.dt.hour < 6).to_numpy(dtype=np.float64),
        }
    )
    one = pd.Series(1.0, index=tx.index)
    frame["card_tx_count_1h"] = _rolling(tx, "customer_id", one, "1h", "sum", fill=0.0)
    frame["card_tx_count_1d"] = _rolling(tx, "customer_id", one, "1D", "sum", fill=0.0)
    mean_7d = _rolling(tx, "customer_id", tx["amount"], "7D", "mean", fill=np.nan)
    frame["card_mean_amount_7d"] = mean_7d
    frame["amount_over_card_mean_7d"] = frame["amount"] / np.where(mean_7d > 0, mean_7d, np.nan)
    frame["terminal_tx_count_1d"] = _rolling(tx, "terminal_id", one, "1D", "sum", fill=0.0)
    frame["terminal_fraud_rate_28d"] = _terminal_fraud_rate(tx)
    frame["is_fraud"] = tx["is_fraud"].to_numpy().astype(np.int8)
    frame[LABEL_KNOWN_AT] = tx[LABEL_KNOWN_AT].to_numpy()
    return frame


def _rolling(
    tx: pd.DataFrame, key: str, values: pd.Series, window: str | pd.Timedelta, how: str, fill: float
) -> NDArray[np.float64]:
    """A rolling ``how`` of ``values`` per ``key`` over the earlier rows within ``window``
    (closed on the left: a row never sees itself or the future), in ``tx``'s row order."""
    frame = pd.DataFrame({key: tx[key].to_numpy(), "v": values.to_numpy(dtype=np.float64)})
    frame.index = pd.DatetimeIndex(tx["tx_datetime"])
    rolled = getattr(frame.groupby(key, sort=True)["v"].rolling(window, closed="left"), how)()
    order = np.argsort(tx[key].to_numpy(), kind="stable")  # rolling() groups by sorted key
    out = np.empty(len(tx), dtype=np.float64)
    values_out = rolled.to_numpy(dtype=np.float64)
    out[order] = values_out if np.isnan(fill) else np.nan_to_num(values_out, nan=fill)
    return out


def _terminal_fraud_rate(tx: pd.DataFrame) -> NDArray[np.float64]:
    """The terminal's share of fraud over 28 days, counting only labels already known:
    the window ``[t - 28d - delay, t - delay)`` (delay: the longest label delay)."""
    delay = pd.Timedelta((tx[LABEL_KNOWN_AT] - tx["tx_datetime"]).max()).ceil("h")
    fraud = tx["is_fraud"].astype(np.float64)
    one = pd.Series(1.0, index=tx.index)
    long = pd.Timedelta(days=28) + delay
    counts = _rolling(tx, "terminal_id", one, long, "sum", 0.0) - _rolling(
        tx, "terminal_id", one, delay, "sum", 0.0
    )
    frauds = _rolling(tx, "terminal_id", fraud, long, "sum", 0.0) - _rolling(
        tx, "terminal_id", fraud, delay, "sum", 0.0
    )
    rate: NDArray[np.float64] = np.where(counts > 0, frauds / np.maximum(counts, 1.0), 0.0)
    return rate
