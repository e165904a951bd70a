"""Feature definitions for the transaction simulator's data (the demo and the template).

``transaction_definitions("data")`` reads ``data/transactions.parquet`` and
``data/labels.parquet`` as written by ``driftloop simulate --out data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftloop.features._catalog import Definition
from driftloop.features._definitions import Entity
from driftloop.features._on_demand import OnDemandFeature
from driftloop.features._sources import ParquetSource, QuerySource
from driftloop.features._store import FeatureStore
from driftloop.features._windows import Aggregation, StreamFeatureView

__all__ = [
    "TRANSACTION_FEATURES",
    "transaction_definitions",
    "transaction_feature_names",
    "transaction_feature_store",
]

TRANSACTION_FEATURES = [
    "customer_count_1h",
    "customer_count_24h",
    "customer_count_7d",
    "customer_amount_mean_24h",
    "customer_amount_mean_7d",
    "customer_amount_max_24h",
    "customer_terminals_24h",
    "terminal_count_24h",
    "terminal_count_7d",
    "terminal_frauds_30d",
    "terminal_labelled_30d",
    "amount_over_customer_mean_7d",
    "terminal_fraud_rate_30d",
]
"""Every feature of the example, as ``training_frame``/``online_features`` references."""


def transaction_feature_names() -> list[str]:
    """The references of every feature of the example (for training and serving)."""
    return list(TRANSACTION_FEATURES)


def _ratio(numerator: str, denominator: str) -> Any:
    def ratio(df: Any) -> Any:
        return df[numerator] / df[denominator].where(df[denominator] != 0)

    ratio.__qualname__ = f"ratio({numerator}, {denominator})"
    return ratio


def transaction_definitions(data: str | Path = "data") -> list[Definition]:
    """Entities, window views and on-demand features over a simulated data folder."""
    folder = str(data).rstrip("/")
    customer = Entity("customer", ["customer_id"], description="A card holder.")
    terminal = Entity("terminal", ["terminal_id"], description="A payment terminal.")
    transactions = ParquetSource(f"{folder}/transactions.parquet")
    customer_tx = StreamFeatureView(
        "customer_tx",
        entities=[customer],
        source=transactions,
        timestamp_field="tx_datetime",
        aggregations=[
            Aggregation(None, "count", "1h", "customer_count_1h"),
            Aggregation(None, "count", "24h", "customer_count_24h"),
            Aggregation(None, "count", "7d", "customer_count_7d"),
            Aggregation("amount", "mean", "24h", "customer_amount_mean_24h"),
            Aggregation("amount", "mean", "7d", "customer_amount_mean_7d"),
            Aggregation("amount", "max", "24h", "customer_amount_max_24h"),
            Aggregation("terminal_id", "count_distinct", "24h", "customer_terminals_24h"),
        ],
        description="Spending of each card over sliding windows.",
        owner="fraud-team",
    )
    terminal_tx = StreamFeatureView(
        "terminal_tx",
        entities=[terminal],
        source=transactions,
        timestamp_field="tx_datetime",
        aggregations=[
            Aggregation(None, "count", "24h", "terminal_count_24h"),
            Aggregation(None, "count", "7d", "terminal_count_7d"),
        ],
        description="Traffic of each terminal.",
        owner="fraud-team",
    )
    # Fraud labels become known later (label_known_at): only known labels may count.
    root = "{root}/" if not Path(folder).is_absolute() else ""
    labelled = QuerySource(
        "SELECT t.terminal_id, t.tx_datetime, l.label_known_at, l.is_fraud "
        f"FROM read_parquet('{root}{folder}/transactions.parquet') t "
        f"JOIN read_parquet('{root}{folder}/labels.parquet') l USING (tx_id)"
    )
    terminal_fraud = StreamFeatureView(
        "terminal_fraud",
        entities=[terminal],
        source=labelled,
        timestamp_field="tx_datetime",
        created_timestamp_field="label_known_at",
        aggregations=[
            Aggregation("is_fraud", "sum", "30d", "terminal_frauds_30d"),
            Aggregation(None, "count", "30d", "terminal_labelled_30d"),
        ],
        description="Known frauds at each terminal over 30 days (labels arrive late).",
        owner="fraud-team",
    )
    amount_ratio = OnDemandFeature(
        "amount_over_customer_mean_7d",
        inputs=["amount", "customer_amount_mean_7d"],
        function=_ratio("amount", "customer_amount_mean_7d"),
        description="This amount relative to the card's 7-day mean.",
    )
    fraud_rate = OnDemandFeature(
        "terminal_fraud_rate_30d",
        inputs=["terminal_frauds_30d", "terminal_labelled_30d"],
        function=_ratio("terminal_frauds_30d", "terminal_labelled_30d"),
        description="Share of known-fraudulent transactions at the terminal over 30 days.",
    )
    return [customer, terminal, customer_tx, terminal_tx, terminal_fraud, amount_ratio, fraud_rate]


def transaction_feature_store(data: str | Path = "data", **store_args: Any) -> FeatureStore:
    """A :class:`FeatureStore` with :func:`transaction_definitions` over ``data``.

    ``store_args`` go to :class:`FeatureStore` (``settings=``, ``online_store=``, ...).
    """
    return FeatureStore(definitions=transaction_definitions(data), **store_args)
