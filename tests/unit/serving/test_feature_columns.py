"""Enrichment reads feature columns: a feature store's own, or any source's rows turned
into columns alike; only on-demand features make it send the request's values."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from driftloop.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeature,
    SqliteOnlineStore,
)
from driftloop.serving import FeatureStoreSource, InMemoryFeatureSource
from driftloop.serving._features import read_columns, uses_request_values

T = datetime(2026, 3, 1, 12)
SOURCE = pd.DataFrame({"card_id": ["c1"], "ts": [T], "count_1d": [1.0], "segment": ["a"]})
VIEW = FeatureView(
    "card", [Entity("card", ["card_id"])], SOURCE, "ts",
    schema=[Field("count_1d"), Field("segment", "string")],
)  # fmt: skip


def store(*extra: OnDemandFeature) -> FeatureStore:
    fs = FeatureStore(definitions=[VIEW, *extra], online_store=SqliteOnlineStore(":memory:"))
    fs.push("card", [{"card_id": "c1", "ts": T, "count_1d": 3.0, "segment": "b"}])
    return fs


def test_a_feature_store_answers_columns_equal_to_its_rows() -> None:
    source = FeatureStoreSource(store())
    rows = [{"card_id": "c1"}, {"card_id": "c9"}, {"card_id": "c1"}]
    wanted = ["segment", "count_1d", "amount"]  # amount: a request field, not a feature
    values, times = read_columns(source, rows, wanted)
    assert values == {"segment": ["b", None, "b"], "count_1d": [3.0, None, 3.0]}
    assert times["count_1d"] == [T, None, T]
    as_rows = source.read(rows, wanted)
    assert [dict(r.values) for r in as_rows] == [
        {f: values[f][i] for f in values} for i in range(len(rows))
    ]


def test_a_source_without_columns_is_read_by_rows() -> None:
    source = InMemoryFeatureSource("card_id")
    source.put("c1", {"count_1d": 4.0}, T)
    values, times = read_columns(source, [{"card_id": "c2"}, {"card_id": "c1"}], ["count_1d"])
    assert values == {"count_1d": [None, 4.0]}
    assert times == {"count_1d": [None, T]}


def test_only_on_demand_features_need_the_request_values() -> None:
    assert not uses_request_values(FeatureStoreSource(store()))
    ratio = OnDemandFeature(
        "count_per_amount", ["count_1d", "amount"], lambda f: f["count_1d"] / f["amount"]
    )
    source = FeatureStoreSource(store(ratio))
    assert uses_request_values(source)
    values, _ = read_columns(source, [{"card_id": "c1", "amount": 2.0}], ["count_per_amount"])
    assert values == {"count_per_amount": [1.5]}
    assert uses_request_values(InMemoryFeatureSource("card_id"))  # unknown: send them
