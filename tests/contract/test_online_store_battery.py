"""The conformance battery every OnlineStore must pass (``check_online_store(factory)``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from driftloop.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnlineEvent,
    OnlineRead,
    OnlineRow,
    OnlineStore,
)
from driftloop.features._online import read_batch

Factory = Callable[[], OnlineStore]


def rows_round_trip_with_their_types(store: OnlineStore) -> None:
    values = {"f": 1.5, "i": 3, "s": "x", "b": True, "n": None}
    store.write_rows([OnlineRow("v:1", 10, values), OnlineRow("v:2", 11, {"f": 2.0})])
    got = store.read(["v:1", "v:2", "v:missing"])
    assert got.rows["v:1"].values == values
    assert got.rows["v:1"].ts_us == 10
    assert got.rows["v:2"].values == {"f": 2.0}
    assert "v:missing" not in got.rows


def older_row_never_replaces_a_newer_one(store: OnlineStore) -> None:
    store.write_rows([OnlineRow("v:1", 20, {"f": 2.0})])
    store.write_rows([OnlineRow("v:1", 10, {"f": 1.0})])
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 2.0}
    store.write_rows([OnlineRow("v:1", 30, {"f": 3.0})])
    store.write_rows([OnlineRow("v:1", 30, {"f": 3.0})])  # idempotent
    assert store.read(["v:1"]).rows["v:1"].ts_us == 30


def many_keys_in_one_read(store: OnlineStore) -> None:
    store.write_rows([OnlineRow(f"v:{i}", i, {"f": float(i)}) for i in range(1_200)])
    got = store.read([f"v:{i}" for i in range(1_200)])
    assert len(got.rows) == 1_200
    assert got.rows["v:777"].values == {"f": 777.0}


def events_are_kept_once_pruned_and_read_after_since(store: OnlineStore) -> None:
    evs = [OnlineEvent("s:1", ts, f"id{ts}", {"a": float(ts)}) for ts in (100, 200, 300)]
    store.append_events(evs, retention_us=1_000)
    store.append_events(evs[:1], retention_us=1_000)  # the same event again: kept once
    got = store.read([], ["s:1", "s:2"], since_us=100)
    assert got.events["s:1"] == [(200, {"a": 200.0}), (300, {"a": 300.0})]
    assert "s:2" not in got.events
    store.append_events([OnlineEvent("s:1", 1_250, "late", {"a": 1.0})], retention_us=1_000)
    assert [ts for ts, _ in store.read([], ["s:1"]).events["s:1"]] == [300, 1_250]


def rows_and_events_come_back_in_one_read(store: OnlineStore) -> None:
    store.write_rows([OnlineRow("v:1", 1, {"f": 1.0})])
    store.append_events([OnlineEvent("s:1", 5, "e", {"a": 2.0})], retention_us=100)
    got = store.read(["v:1"], ["s:1"])
    assert got.rows["v:1"].values == {"f": 1.0}
    assert got.events["s:1"] == [(5, {"a": 2.0})]


def metadata_round_trips(store: OnlineStore) -> None:
    assert store.get_meta("watermark:x") is None
    store.set_meta("watermark:x", "2025-01-01T00:00:00")
    store.set_meta("watermark:x", "2025-01-02T00:00:00")
    assert store.get_meta("watermark:x") == "2025-01-02T00:00:00"


def awkward_values_read_back_exactly(store: OnlineStore) -> None:
    values = {
        "inf": math.inf,
        "-inf": -math.inf,
        "big": 2**70,
        "neg": -(2**63),
        "tiny": 5e-324,
        "text": 'caf\u00e9 | \u2603 "q" ,]',
        "empty": "",
    }
    store.write_rows([OnlineRow("v:1", 1, values), OnlineRow("v:2", 1, {"nan": math.nan})])
    got = store.read(["v:1", "v:2"])
    assert got.rows["v:1"].values == values
    assert math.isnan(got.rows["v:2"].values["nan"])


def created_time_orders_rows_of_equal_event_time(store: OnlineStore) -> None:
    store.write_rows([OnlineRow("v:1", 10, {"f": 1.0}, created_us=5)])
    store.write_rows([OnlineRow("v:1", 10, {"f": 0.0}, created_us=4)])  # created earlier
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 1.0}
    store.write_rows([OnlineRow("v:1", 10, {"f": 0.5})])  # no created time: the oldest
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 1.0}
    store.write_rows([OnlineRow("v:1", 10, {"f": 2.0}, created_us=5)])  # a tie: replaces
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 2.0}
    store.write_rows([OnlineRow("v:1", 10, {"f": 3.0}, created_us=6)])
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 3.0}
    store.write_rows([OnlineRow("v:1", 9, {"f": 9.0}, created_us=99)])  # older event time
    assert store.read(["v:1"]).rows["v:1"].values == {"f": 3.0}
    store.write_rows([OnlineRow("v:1", 11, {"f": 4.0})])  # newer event time, no created
    assert store.read(["v:1"]).rows["v:1"] == OnlineRow("v:1", 11, {"f": 4.0})
    # without created times, the last write of an equal event time wins (a correction)
    store.write_rows([OnlineRow("v:2", 10, {"f": 1.0}), OnlineRow("v:2", 10, {"f": 2.0})])
    assert store.read(["v:2"]).rows["v:2"].values == {"f": 2.0}


def batch_read_answers_in_the_order_asked(store: OnlineStore) -> None:
    store.write_rows([OnlineRow("v:1", 1, {"f": 1.0}), OnlineRow("v:2", 2, {"f": None})])
    evs = [OnlineEvent("s:1", 5, "a", {"a": 1.0}), OnlineEvent("s:1", 5, "b", {"a": 2.0})]
    store.append_events(evs, retention_us=100)
    row_keys = ["v:2", "v:missing", "v:1", "v:2"]
    event_keys = ["s:none", "s:1", "s:1"]
    batch = read_batch(store, row_keys, event_keys, since_us=0)
    assert batch.row_ts == [2, None, 1, 2]
    assert batch.row_values == [{"f": None}, None, {"f": 1.0}, {"f": None}]
    both = [(5, {"a": 1.0}), (5, {"a": 2.0})]  # equal times: both kept, by id
    assert batch.events == [[], both, both]
    assert read_batch(store, [], []).row_ts == []
    # the same answer as read(), and as a store that only has read()
    assert read_batch(_ReadOnly(store), row_keys, event_keys) == batch


class _ReadOnly:
    """The store behind only the protocol's ``read`` (as a third-party store may be)."""

    def __init__(self, store: OnlineStore) -> None:
        self._store = store

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        return self._store.read(row_keys, event_keys, since_us)


T0 = datetime(2025, 1, 1)


def feature_store_reads_are_exact(store: OnlineStore) -> None:
    """TTL expiry, missing entities, nulls, a row added later and created-time ties,
    through ``FeatureStore.online_features`` over this store."""
    source = pd.DataFrame(
        {
            "card_id": [1, 2, 3, 4],
            "ts": [T0, T0 - timedelta(days=8), T0, T0],
            "created": [T0, T0, T0, T0],
            "amount": [10.0, 20.0, None, 40.0],
            "segment": ["a", "b", None, "d"],
        }
    )
    view = FeatureView(
        "card",
        [Entity("card", ["card_id"])],
        source,
        "ts",
        created_timestamp_field="created",
        schema=[Field("amount"), Field("segment", "string")],
        ttl="7d",
    )
    fs = FeatureStore(definitions=[view], online_store=store)
    fs.push("card", source)
    # card 4 again at the same event time: created later wins, created earlier does not
    fs.push("card", [{**source.iloc[3].to_dict(), "amount": 41.0, "created": T0 + timedelta(1)}])
    fs.push("card", [{**source.iloc[3].to_dict(), "amount": 39.0, "created": T0 - timedelta(1)}])
    as_of = T0 + timedelta(hours=1)
    rows = [{"card_id": c} for c in (1, 2, 3, 4, 5, 1)]
    got = fs.online_features(["amount", "segment"], rows, as_of=as_of)
    assert got.values == {
        "amount": [10.0, None, None, 41.0, None, 10.0],  # 2: past its TTL; 5: missing
        "segment": ["a", None, None, "d", None, "a"],
    }
    assert got.timestamps["amount"] == [T0, None, T0, T0, None, T0]
    # the TTL edge: a row exactly TTL old is still fresh, a microsecond more is not
    edge = T0 - timedelta(days=8) + timedelta(days=7)
    assert fs.online_features(["amount"], [{"card_id": 2}], as_of=edge).values["amount"] == [20.0]
    later = edge + timedelta(microseconds=1)
    assert fs.online_features(["amount"], [{"card_id": 2}], as_of=later).values["amount"] == [None]
    # a row stored before a feature existed reads None for it, not an error
    store.write_rows([OnlineRow("card:6", to_us_(T0), {"amount": 6.0}, created_us=to_us_(T0))])
    got = fs.online_features(["segment", "amount"], [{"card_id": 6}], as_of=as_of)
    assert got.values == {"segment": [None], "amount": [6.0]}


def packed_and_json_rows_read_alike(store: OnlineStore) -> None:
    """Rows of floats and nulls are stored packed, others as JSON: a batch mixing them, or
    packed rows of other feature sets, reads every value exactly through the feature
    store (TTL, missing entities, nulls, NaN, -0.0, a feature added later)."""
    now, day = to_us_(T0), 86_400_000_000
    store.write_rows(
        [
            OnlineRow("p:1", now, {"a": 1.5, "b": None}),
            OnlineRow("p:2", now - 8 * day, {"a": 2.5, "b": 3.5}),  # past the TTL
            OnlineRow("p:3", now, {"a": 7, "b": 1.0}),  # an integer: JSON
            OnlineRow("p:4", now, {"a": -0.0, "b": math.nan}),
            OnlineRow("p:5", now, {"a": 5.0}),  # written before b existed
        ]
    )
    source = pd.DataFrame({"pid": [1], "ts": [T0], "a": [1.0], "b": [1.0]})
    view = FeatureView(
        "p", [Entity("p", ["pid"])], source, "ts", schema=[Field("a"), Field("b")], ttl="7d"
    )
    fs = FeatureStore(definitions=[view], online_store=store)
    as_of = T0 + timedelta(hours=1)

    def read(*ids: int) -> dict[str, list[Any]]:
        got = fs.online_features(["b", "a"], [{"pid": i} for i in ids], as_of=as_of)
        return {**got.values, "ts": got.timestamps["a"]}

    mixed = read(1, 2, 3, 4, 5, 6, 1)
    assert mixed["a"] == [1.5, None, 7, -0.0, 5.0, None, 1.5]
    assert math.copysign(1.0, mixed["a"][3]) == -1.0
    assert math.isnan(mixed["b"][3])
    assert [mixed["b"][i] for i in (0, 1, 2, 4, 5, 6)] == [None, None, 1.0, None, None, None]
    assert mixed["ts"] == [T0, None, T0, T0, T0, None, T0]
    assert read(1, 1) == {"b": [None, None], "a": [1.5, 1.5], "ts": [T0, T0]}
    assert read(1, 2, 6) == {"b": [None] * 3, "a": [1.5, None, None], "ts": [T0, None, None]}
    assert read(5, 1)["a"] == [5.0, 1.5]  # packed rows of two feature sets
    many = read(1, 2, 6, 1, 4, 1, 2)  # enough packed rows to be decoded as one matrix
    assert many["a"] == [1.5, None, None, 1.5, -0.0, 1.5, None]
    assert math.isnan(many["b"][4])
    assert many["ts"] == [T0, None, None, T0, T0, T0, None]


def packed_and_json_rows_order_alike(store: OnlineStore) -> None:
    """Overwrites order by event time, then created time, whichever form each row has."""
    store.write_rows([OnlineRow("o:1", 10, {"f": 1.0}, created_us=5)])  # packed
    store.write_rows([OnlineRow("o:1", 10, {"f": 0}, created_us=4)])  # JSON, created earlier
    assert store.read(["o:1"]).rows["o:1"].values == {"f": 1.0}
    store.write_rows([OnlineRow("o:1", 10, {"f": 2}, created_us=6)])
    assert store.read(["o:1"]).rows["o:1"].values == {"f": 2}
    store.write_rows([OnlineRow("o:1", 10, {"f": 3.0})])  # no created time: the oldest
    assert store.read(["o:1"]).rows["o:1"].values == {"f": 2}
    store.write_rows([OnlineRow("o:1", 10, {"f": 3.5}, created_us=6)])  # a tie: replaces
    assert store.read(["o:1"]).rows["o:1"].values == {"f": 3.5}
    store.write_rows([OnlineRow("o:1", 11, {"f": None})])
    assert store.read(["o:1"]).rows["o:1"] == OnlineRow("o:1", 11, {"f": None})
    # before 1970 and near the edge of exact doubles
    store.write_rows([OnlineRow("o:2", -5, {"f": 1.0}, created_us=-7)])
    store.write_rows([OnlineRow("o:2", -10, {"f": 2.0})])
    store.write_rows([OnlineRow("o:2", -5, {"f": 2.5}, created_us=-8)])
    assert store.read(["o:2"]).rows["o:2"].values == {"f": 1.0}
    store.write_rows([OnlineRow("o:2", 2**52, {"f": 3.0}), OnlineRow("o:2", 2**52 - 1, {"f": 4.0})])
    assert store.read(["o:2"]).rows["o:2"] == OnlineRow("o:2", 2**52, {"f": 3.0})


def to_us_(value: datetime) -> int:
    return int((value - datetime(1970, 1, 1)) / timedelta(microseconds=1))


CHECKS = [
    rows_round_trip_with_their_types,
    packed_and_json_rows_read_alike,
    packed_and_json_rows_order_alike,
    awkward_values_read_back_exactly,
    created_time_orders_rows_of_equal_event_time,
    batch_read_answers_in_the_order_asked,
    feature_store_reads_are_exact,
    older_row_never_replaces_a_newer_one,
    many_keys_in_one_read,
    events_are_kept_once_pruned_and_read_after_since,
    rows_and_events_come_back_in_one_read,
    metadata_round_trips,
]


def check_online_store(factory: Factory) -> None:
    """Run every check against a fresh store from ``factory``."""
    for check in CHECKS:
        store = factory()
        try:
            check(store)
        finally:
            store.close()
