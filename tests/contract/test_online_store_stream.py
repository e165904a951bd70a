"""Events published to Redis Streams reach the online window aggregates exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pandas as pd
import pytest

from driftloop.core.errors import BackendUnavailableError
from driftloop.features import (
    Aggregation,
    Entity,
    FeatureStore,
    RedisOnlineStore,
    RedisStreamConsumer,
    StreamFeatureView,
)

T0 = datetime(2025, 1, 1)


def card_store(redis_url: str) -> FeatureStore:
    history = pd.DataFrame({"card_id": [1], "ts": [T0 - timedelta(days=9)], "amount": [1.0]})
    view = StreamFeatureView(
        "card_tx",
        [Entity("card", ["card_id"])],
        history,
        "ts",
        [Aggregation(None, "count", "1h"), Aggregation("amount", "sum", "1h")],
    )
    online = RedisOnlineStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    return FeatureStore(definitions=[view], online_store=online)


def test_published_events_are_pushed_once_even_when_redelivered(redis_url: str) -> None:
    store = card_store(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:stream:"
    consumer = RedisStreamConsumer(store, redis_url, prefix=prefix)
    events = [
        {"card_id": 1, "ts": T0 + timedelta(minutes=m), "amount": float(m)} for m in (1, 2, 3)
    ]
    assert consumer.publish("card_tx", events) == 3
    assert consumer.poll() == 3
    assert consumer.poll() == 0  # acknowledged
    consumer.publish("card_tx", events[:1])  # a producer retry: the same event again
    assert consumer.poll() == 1
    got = store.online_features(
        ["count_1h", "amount_sum_1h"], [{"card_id": 1}], as_of=T0 + timedelta(minutes=5)
    )
    assert got.values == {"count_1h": [3], "amount_sum_1h": [6.0]}
    consumer.close()
    store.close()


def test_stream_unreachable_raises_backend_unavailable(redis_url: str) -> None:
    store = card_store(redis_url)
    consumer = RedisStreamConsumer(store, "redis://127.0.0.1:1/0", timeout_s=0.2)
    with pytest.raises(BackendUnavailableError):
        consumer.poll()
    store.close()
