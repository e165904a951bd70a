"""Source windows read from a simulator data folder, and the default training frame.

The training frame function is a parameter of the pipeline: a plain per-row frame from
the transactions (below), or the feature store's point-in-time frame
(``_store_frame.feature_store_frame``), both returning a :class:`TrainingFrame`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InsufficientDataError, NotFoundError, SchemaMismatchError

__all__ = [
    "SOURCE_FILES",
    "SourceWindow",
    "TrainingFrame",
    "TrainingFrameFn",
    "file_digests",
    "load_window",
    "transaction_features",
]

SOURCE_FILES = ("transactions.parquet", "customers.parquet", "labels.parquet")


@dataclass(frozen=True)
class SourceWindow:
    """Labelled transactions of a time window, with the customers table beside them."""

    transactions: pd.DataFrame
    customers: pd.DataFrame


@dataclass(frozen=True)
class TrainingFrame:
    """What a training-frame function returns.

    ``frame`` holds the features, the label, the timestamp and any context columns
    (segment, sensitive attribute); ``features`` names the model inputs in order;
    ``sources`` maps a feature to its (feature view, version) when it came from one
    (feature-store versions are content hashes, strings); ``entity_keys`` the request
    fields a server enriches the other features by (the feature views' join keys).
    """

    frame: pd.DataFrame
    features: list[str]
    sources: Mapping[str, tuple[str, str | int | None]] = field(default_factory=dict)
    entity_keys: tuple[str, ...] = ()


TrainingFrameFn = Callable[[SourceWindow, str, str], TrainingFrame]
"""``fn(window, label, timestamp) -> TrainingFrame``."""


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of each source file (the load step's inputs)."""
    out = {}
    for name in SOURCE_FILES:
        path = folder / name
        if not path.is_file():
            raise NotFoundError(
                f"Data folder {folder} has no {name}; expected {', '.join(SOURCE_FILES)} "
                "(write them with driftloop.data.simulate_transactions(...).write(folder))."
            )
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[name] = digest.hexdigest()
    return out


def load_window(
    folder: Path,
    *,
    label: str,
    timestamp: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> SourceWindow:
    """Transactions in ``[start, end)`` joined to their labels, plus customers."""
    tx = pd.read_parquet(folder / "transactions.parquet")
    labels = pd.read_parquet(folder / "labels.parquet")
    if label not in labels.columns:
        raise SchemaMismatchError(
            f"Labels file {folder / 'labels.parquet'} has no label column '{label}'. "
            f"Columns: {', '.join(map(str, labels.columns))}."
        )
    if timestamp not in tx.columns:
        raise SchemaMismatchError(
            f"Transactions have no timestamp column '{timestamp}'. "
            f"Columns: {', '.join(map(str, tx.columns))}."
        )
    tx = tx.drop(columns=[c for c in (label,) if c in tx.columns])
    keep = ["tx_id", label, *(["label_known_at"] if "label_known_at" in labels.columns else [])]
    tx = tx.merge(labels[keep], on="tx_id", how="inner", validate="one_to_one")
    span = f"{tx[timestamp].min()} to {tx[timestamp].max()}" if len(tx) else "no rows"
    if start is not None:
        tx = tx[tx[timestamp] >= start]
    if end is not None:
        tx = tx[tx[timestamp] < end]
    if tx.empty:
        raise InsufficientDataError(
            f"The training window [{start}, {end}) holds no labelled transactions "
            f"(the data spans {span})."
        )
    customers = pd.read_parquet(folder / "customers.parquet")
    return SourceWindow(tx.sort_values([timestamp, "tx_id"]).reset_index(drop=True), customers)


def transaction_features(window: SourceWindow, label: str, timestamp: str) -> TrainingFrame:
    """Per-row features of each transaction, from its own fields and its card's history.

    Rolling windows look only at the card's earlier transactions (closed on the left at
    the current row), so no row sees the future.
    """
    tx = window.transactions
    customers = window.customers.set_index("customer_id")
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
    return TrainingFrame(frame, features)


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
