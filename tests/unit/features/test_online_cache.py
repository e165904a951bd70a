"""The opt-in cache of hot online rows serves only the views named, only while fresh."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
import pytest

from driftloop.core.errors import InvalidParameterError
from driftloop.features import (
    CachedOnlineStore,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnlineRow,
    SqliteOnlineStore,
)
from driftloop.features._online import OnlineBatch


class CountingStore(SqliteOnlineStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
        self.asked: list[list[str]] = []

    def read_batch(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineBatch:
        self.asked.append(list(row_keys))
        return super().read_batch(row_keys, event_keys, since_us)


def cached(
    ages: dict[str, float], **kwargs: int
) -> tuple[CachedOnlineStore, CountingStore, list[float]]:
    now = [0.0]
    inner = CountingStore()
    return CachedOnlineStore(inner, ages, clock=lambda: now[0], **kwargs), inner, now


def test_rows_of_a_named_view_are_served_from_memory_until_their_max_age() -> None:
    store, inner, now = cached({"v": 2.0})
    inner.write_rows([OnlineRow("v:1", 10, {"f": 1.0})])
    assert store.read_batch(["v:1", "v:2"]).row_values == [{"f": 1.0}, None]
    inner.write_rows([OnlineRow("v:1", 20, {"f": 2.0}), OnlineRow("v:2", 20, {"f": 5.0})])
    now[0] = 1.9  # another process wrote: within the accepted staleness, the cached answer
    assert store.read_batch(["v:1", "v:2"]).row_values == [{"f": 1.0}, None]
    now[0] = 2.0
    assert store.read_batch(["v:1", "v:2"]).row_values == [{"f": 2.0}, {"f": 5.0}]
    assert inner.asked == [["v:1", "v:2"], ["v:1", "v:2"]]


def test_views_not_named_are_always_read_from_the_store() -> None:
    store, inner, _ = cached({"v": 60.0})
    inner.write_rows([OnlineRow("w:1", 10, {"f": 1.0})])
    store.read_batch(["w:1"])
    inner.write_rows([OnlineRow("w:1", 20, {"f": 2.0})])
    assert store.read_batch(["w:1"]).row_values == [{"f": 2.0}]
    assert store.hits == 0


def test_a_write_through_the_cache_is_read_back_at_once() -> None:
    store, _, _ = cached({"v": 60.0})
    store.write_rows([OnlineRow("v:1", 10, {"f": 1.0})])
    assert store.read_batch(["v:1"]).row_ts == [10]
    store.write_rows([OnlineRow("v:1", 20, {"f": 2.0})])
    assert store.read_batch(["v:1"]).row_values == [{"f": 2.0}]


def test_the_least_recently_used_rows_leave_first() -> None:
    store, inner, _ = cached({"v": 60.0}, max_entries=2)
    inner.write_rows([OnlineRow(f"v:{i}", 1, {"f": float(i)}) for i in range(3)])
    store.read_batch(["v:0", "v:1"])
    store.read_batch(["v:0"])  # v:0 is now the most recent
    store.read_batch(["v:2"])  # evicts v:1
    inner.asked.clear()
    store.read_batch(["v:0", "v:1", "v:2"])
    assert inner.asked == [["v:1"]]


def test_a_cache_without_a_positive_max_age_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="max_age_s"):
        CachedOnlineStore(SqliteOnlineStore(":memory:"), {"v": 0.0})


def test_a_view_declaring_its_online_max_age_is_served_from_memory_for_that_long() -> None:
    t = datetime(2026, 3, 1)
    source = pd.DataFrame({"card_id": [1], "ts": [t], "f": [1.0]})
    card = Entity("card", ["card_id"])
    hot = FeatureView("hot", [card], source, "ts", schema=[Field("f")], online_max_age="2s")
    cold = FeatureView("cold", [card], source, "ts", schema=[Field("f")])
    fs = FeatureStore(definitions=[hot, cold])
    online = fs.online
    assert isinstance(online, CachedOnlineStore)
    assert online.max_age_s == {"hot": 2.0}  # only the view that declared it
    assert FeatureStore(definitions=[cold]).online.__class__.__name__ == "SqliteOnlineStore"
    assert hot.version != FeatureView("hot", [card], source, "ts", schema=[Field("f")]).version
    assert cold.spec() == FeatureView("cold", [card], source, "ts", [Field("f")]).spec()
    with pytest.raises(InvalidParameterError, match="online_max_age"):
        FeatureView("bad", [card], source, "ts", online_max_age=timedelta(0))
