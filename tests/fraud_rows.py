"""Per-row features of the simulator's transactions, computed in pandas: the features of
the monitoring end-to-end test (the library knows none of these columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray


def load_rows(folder) -> tuple[pd.DataFrame, pd.DataFrame]:  # type: ignore[no-untyped-def]
    """Transactions joined to their labels, in time order, and the customers."""
    tx = pd.read_parquet(folder / "transactions.parquet").drop(
        columns=["is_fraud"], errors="ignore"
    )
    labels = pd.read_parquet(folder / "labels.parquet")
    tx = tx.merge(
        labels[["tx_id", "is_fraud", "label_known_at"]], on="tx_id", validate="one_to_one"
    )
    return tx.sort_values(["tx_datetime", "tx_id"]).reset_index(drop=True), pd.read_parquet(
        folder / "customers.parquet"
    )


def transaction_features(
    tx: pd.DataFrame, customers: pd.DataFrame, label: str, timestamp: str
) -> tuple[pd.DataFrame, list[str]]:
    """Per-row features of each transaction, from its own fields and its card's history.

    Rolling windows look only at the card's earlier transactions (closed on the left at
    the current row), so no row sees the future.
    """
    customers = customers.set_index("customer_id")
    ts = tx[timestamp]
    frame = pd.DataFrame(
        {
            "tx_id": tx["tx_id"].to_numpy(),
            timestamp: ts.to_numpy(),
            label: tx[label].to_numpy().astype(np.int8),
            "amount": tx["amount"].to_numpy(dtype=np.float64),
            "hour": ts.dt.hour.to_numpy(dtype=np.float64),
            "is_night": (ts.dt.hour < 6).to_numpy(dtype=np.float64),
            "is_weekend": (ts.dt.day_of_week >= 5).to_numpy(dtype=np.float64),
        }
    )
    by_card = tx[["customer_id", timestamp, "amount"]].copy()
    by_card["one"] = 1.0
    by_card = by_card.set_index(timestamp)
    grouped = by_card.groupby("customer_id", sort=True)
    count_1d = grouped["one"].rolling("1D", closed="left").sum()
    mean_7d = grouped["amount"].rolling("7D", closed="left").mean()
    # rolling() returns rows grouped by card (sorted ids), in time order within each card.
    order = np.argsort(tx["customer_id"].to_numpy(), kind="stable")
    frame.loc[order, "card_tx_count_1d"] = np.nan_to_num(count_1d.to_numpy(), nan=0.0)
    frame.loc[order, "card_mean_amount_7d"] = mean_7d.to_numpy()
    mean_7d_positive = frame["card_mean_amount_7d"].where(frame["card_mean_amount_7d"] > 0)
    frame["amount_over_card_mean_7d"] = frame["amount"] / mean_7d_positive
    _terminal_risk(tx, frame, label, timestamp)
    for column in ("segment", "age_band"):
        if column in customers.columns:
            frame[column] = customers[column].reindex(tx["customer_id"]).to_numpy()
    features = [
        "amount",
        "hour",
        "is_night",
        "is_weekend",
        "card_tx_count_1d",
        "card_mean_amount_7d",
        "amount_over_card_mean_7d",
        "terminal_tx_count_28d",
        "terminal_fraud_rate_28d",
    ]
    return frame, features


def _terminal_risk(tx: pd.DataFrame, frame: pd.DataFrame, label: str, timestamp: str) -> None:
    """Share of fraud at the terminal over 28 days, counting only labels already known.

    Labels arrive ``delay`` after the transaction, so the window is ``[t - 28d - delay,
    t - delay)``: a rolling sum over ``28d + delay`` minus the one over ``delay``.
    """
    delay = pd.Timedelta(days=7)
    if "label_known_at" in tx.columns and len(tx):
        delay = pd.Timedelta((tx["label_known_at"] - tx[timestamp]).max()).ceil("D")
    long, short = pd.Timedelta(days=28) + delay, delay
    by_terminal = tx[["terminal_id", timestamp, label]].astype({label: np.float64})
    by_terminal["one"] = 1.0
    grouped = by_terminal.set_index(timestamp).groupby("terminal_id", sort=True)
    order = np.argsort(tx["terminal_id"].to_numpy(), kind="stable")

    def window(column: str) -> NDArray[np.float64]:
        wide = grouped[column].rolling(long, closed="left").sum().to_numpy()
        recent = grouped[column].rolling(short, closed="left").sum().to_numpy()
        out: NDArray[np.float64] = np.nan_to_num(wide, nan=0.0) - np.nan_to_num(recent, nan=0.0)
        return out

    counts, frauds = window("one"), window(label)
    frame.loc[order, "terminal_tx_count_28d"] = counts
    frame.loc[order, "terminal_fraud_rate_28d"] = np.where(
        counts > 0, frauds / np.maximum(counts, 1), 0.0
    )
