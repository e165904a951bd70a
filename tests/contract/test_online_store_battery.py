"""The conformance battery every OnlineStore must pass (``check_online_store(factory)``)."""

from __future__ import annotations

from collections.abc import Callable

from driftloop.features import OnlineEvent, OnlineRow, OnlineStore

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


CHECKS = [
    rows_round_trip_with_their_types,
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
