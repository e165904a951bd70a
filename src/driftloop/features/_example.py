"""Feature definitions for the transaction simulator's data (the demo and the template).

:data:`EXAMPLE_FEATURES_PY` is the ``features.py`` that ``driftloop init`` writes; the
functions below build the same definitions over any data folder, so the template and
the demo cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftloop.features._catalog import Definition
from driftloop.features._loading import definitions_in
from driftloop.features._store import FeatureStore

__all__ = [
    "EXAMPLE_FEATURES_PY",
    "example_features_py",
    "transaction_definitions",
    "transaction_feature_names",
    "transaction_feature_store",
]

EXAMPLE_FEATURES_PY = '''\
"""Feature definitions of this project: entities, feature views, on-demand features.

`driftloop features apply` reads this file, checks it and records a versioned copy of
the definitions. Keep it in git beside driftloop.toml.

The example reads the simulator's data: run `driftloop simulate --out data` first.
Paths are relative to this folder; `{root}` in a query is this folder too.
"""

from driftloop.features import (
    Aggregation,
    Entity,
    OnDemandFeature,
    ParquetSource,
    QuerySource,
    StreamFeatureView,
)

customer = Entity("customer", join_keys=["customer_id"], description="A card holder.")
terminal = Entity("terminal", join_keys=["terminal_id"], description="A payment terminal.")

transactions = ParquetSource("data/transactions.parquet")

# Sliding windows per card: "transactions of this card in the last hour", ...
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

# Fraud labels arrive late (label_known_at): a label counts only once it is known.
terminal_fraud = StreamFeatureView(
    "terminal_fraud",
    entities=[terminal],
    source=QuerySource(
        "SELECT t.terminal_id, t.tx_datetime, l.label_known_at, l.is_fraud "
        "FROM read_parquet('{root}/data/transactions.parquet') t "
        "JOIN read_parquet('{root}/data/labels.parquet') l USING (tx_id)"
    ),
    timestamp_field="tx_datetime",
    created_timestamp_field="label_known_at",
    aggregations=[
        Aggregation("is_fraud", "sum", "30d", "terminal_frauds_30d"),
        Aggregation(None, "count", "30d", "terminal_labelled_30d"),
    ],
    description="Known frauds at each terminal over 30 days.",
    owner="fraud-team",
)

# Computed per request, vectorised over a batch: `amount` comes with the request.
amount_over_customer_mean_7d = OnDemandFeature(
    "amount_over_customer_mean_7d",
    inputs=["amount", "customer_amount_mean_7d"],
    function=lambda df: df["amount"] / df["customer_amount_mean_7d"],
)

terminal_fraud_rate_30d = OnDemandFeature(
    "terminal_fraud_rate_30d",
    inputs=["terminal_frauds_30d", "terminal_labelled_30d"],
    function=lambda df: df["terminal_frauds_30d"] / df["terminal_labelled_30d"],
)
'''

_FEATURES = [
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


def example_features_py() -> str:
    """The text of the example ``features.py`` (what ``driftloop init`` writes)."""
    return EXAMPLE_FEATURES_PY


def transaction_feature_names() -> list[str]:
    """The references of every feature of the example (for training and serving)."""
    return list(_FEATURES)


def transaction_definitions(data: str | Path = "data") -> list[Definition]:
    """The example's entities, window views and on-demand features over folder ``data``
    (as written by ``driftloop simulate --out data``; relative to the store's root)."""
    folder = str(data).rstrip("/")
    text = EXAMPLE_FEATURES_PY
    prefix = folder + "/" if Path(folder).is_absolute() else "{root}/" + folder + "/"
    text = text.replace("{root}/data/", prefix).replace('"data/', '"' + folder + "/")
    namespace: dict[str, Any] = {"__name__": "driftloop_example_features"}
    exec(compile(text, "<driftloop example features.py>", "exec"), namespace)
    return definitions_in(namespace)


def transaction_feature_store(data: str | Path = "data", **store_args: Any) -> FeatureStore:
    """A :class:`FeatureStore` with :func:`transaction_definitions` over ``data``.

    ``store_args`` go to :class:`FeatureStore` (``settings=``, ``online_store=``, ...).
    """
    return FeatureStore(definitions=transaction_definitions(data), **store_args)
