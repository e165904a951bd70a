"""Online reads, materialization and pushes agree with the offline store."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from driftloop.core.errors import DataValidationError, InvalidParameterError
from driftloop.features import (
    Aggregation,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeature,
    SqliteOnlineStore,
    StreamFeatureView,
    online_store_from_url,
)

T0 = datetime(2025, 1, 1)
CARD = Entity("card", ["card_id"])


def window_view(source: pd.DataFrame) -> StreamFeatureView:
    return StreamFeatureView(
        "card_tx",
        [CARD],
        source,
        "ts",
        [
            Aggregation(None, "count", "10m"),
            Aggregation("amount", "sum", "1h"),
            Aggregation("amount", "mean", "1h"),
            Aggregation("amount", "max", "30m"),
            Aggregation("terminal_id", "count_distinct", "1h"),
        ],
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_online_windows_after_pushing_up_to_t_equal_offline_at_t(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    tx = pd.DataFrame(
        {
            "card_id": rng.integers(0, 4, n),
            "ts": pd.Timestamp(T0) + pd.to_timedelta(np.sort(rng.integers(0, 3 * 3600, n)), "s"),
            "amount": np.round(rng.gamma(2.0, 10.0, n), 2),
            "terminal_id": rng.integers(0, 5, n),
        }
    )
    view = window_view(tx)
    store = FeatureStore(definitions=[view], online_store=SqliteOnlineStore(":memory:"))
    features = [f"card_tx:{f}" for f in view.feature_names]
    done = 0
    for cut in sorted(rng.choice(n, 6, replace=False)):
        pushed = tx.iloc[: cut + 1]
        # each push overlaps the previous one: re-pushed events must count once
        store.push("card_tx", pushed.iloc[max(0, done - 5) :])
        done = cut + 1
        t = pushed["ts"].iloc[-1]
        card_ids = list(range(4))
        online = store.online_features(
            features, [{"card_id": c} for c in card_ids], as_of=t.to_pydatetime()
        )
        probes = pd.DataFrame({"card_id": card_ids, "event_timestamp": [t] * 4})
        offline_store = FeatureStore(definitions=[window_view(pushed)])
        offline = offline_store.training_frame(probes, features)
        for name in view.feature_names:
            for i, value in enumerate(online.values[name]):
                expected = offline[name].iloc[i]
                if pd.isna(expected):
                    assert value is None, (name, i)
                else:
                    assert value == pytest.approx(expected, rel=1e-9), (name, i, t)


def profile_store(online: SqliteOnlineStore | None = None) -> FeatureStore:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1, 2, 3],
            "ts": [T0, T0 + timedelta(days=1), T0, T0 - timedelta(days=30)],
            "mean_amount": [10.0, 20.0, 30.0, 40.0],
            "segment": ["a", "b", "c", "d"],
        }
    )
    view = FeatureView(
        "card_profile",
        [CARD],
        rows,
        "ts",
        schema=[Field("mean_amount"), Field("segment", "string")],
        ttl="7d",
    )
    ratio = OnDemandFeature(
        "amount_ratio", ["amount", "mean_amount"], lambda df: df["amount"] / df["mean_amount"]
    )
    return FeatureStore(
        definitions=[view, ratio], online_store=online or SqliteOnlineStore(":memory:")
    )


def test_materialize_then_read_latest_values_with_timestamps_and_on_demand() -> None:
    store = profile_store()
    store.materialize(T0 - timedelta(days=60), T0 + timedelta(days=2), progress=False)
    got = store.online_features(
        ["mean_amount", "segment", "amount_ratio"],
        [
            {"card_id": 1, "amount": 40.0},
            {"card_id": 2, "amount": 3.0},
            {"card_id": 9, "amount": 1.0},
        ],
        as_of=T0 + timedelta(days=2),
    )
    assert got.values["mean_amount"] == [20.0, 30.0, None]
    assert got.values["segment"] == ["b", "c", None]
    assert got.values["amount_ratio"][:2] == [2.0, 0.1]
    assert got.timestamps["mean_amount"][:2] == [T0 + timedelta(days=1), T0]
    # card 3's row is 32 days old at read time: beyond the 7 day TTL
    stale = store.online_features(["mean_amount"], [{"card_id": 3}], as_of=T0 + timedelta(days=2))
    assert stale.values["mean_amount"] == [None]


def test_materialize_incremental_continues_from_the_watermark_and_is_idempotent() -> None:
    store = profile_store()
    first = store.materialize_incremental(T0 + timedelta(hours=1), progress=False)
    assert first[0].rows == 3  # cards 1, 2 and 3 as of T0
    second = store.materialize_incremental(T0 + timedelta(days=2), progress=False)
    assert second[0].rows == 1  # only card 1's newer row
    again = store.materialize_incremental(T0 + timedelta(days=2), progress=False)
    assert again[0].rows == 0
    got = store.online_features(["mean_amount"], [{"card_id": 1}], as_of=T0 + timedelta(days=2))
    assert got.values["mean_amount"] == [20.0]


def test_interrupted_materialization_resumes_after_the_last_written_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from driftloop.features import _materialize

    monkeypatch.setattr(_materialize, "BATCH_ROWS", 1)
    store = profile_store()
    online = store.online
    calls = {"n": 0}
    real_write = online.write_rows

    def failing_write(rows: list) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("lost the online store")
        real_write(rows)

    monkeypatch.setattr(online, "write_rows", failing_write)
    end = T0 + timedelta(days=2)
    with pytest.raises(ConnectionError):
        store.materialize(T0 - timedelta(days=60), end, progress=False)
    result = store.materialize(T0 - timedelta(days=60), end, progress=False)
    assert result[0].batches_skipped == 1
    assert result[0].rows == 2
    got = store.online_features(["mean_amount"], [{"card_id": c} for c in (1, 2)], as_of=end)
    assert got.values["mean_amount"] == [20.0, 30.0]


def test_online_read_without_join_key_is_refused_by_name() -> None:
    with pytest.raises(DataValidationError, match="join key 'card_id'"):
        profile_store().online_features(["mean_amount"], [{"card": 1}])


def test_online_store_is_chosen_by_url_scheme(tmp_path: object) -> None:
    from pathlib import Path

    store = online_store_from_url("sqlite:///state/online.db", Path(str(tmp_path)))
    assert isinstance(store, SqliteOnlineStore)
    assert (Path(str(tmp_path)) / "state" / "online.db").exists()
    store.close()
    with pytest.raises(InvalidParameterError, match="Known: sqlite, redis"):
        online_store_from_url("memcached://x", Path("."))


def test_a_tied_row_created_after_a_run_is_written_by_the_next_run() -> None:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1],
            "ts": [T0, T0],
            "created": [T0, T0 + timedelta(seconds=1)],
            "score": [1.0, 2.0],
        }
    )
    view = FeatureView(
        "card_stats", [CARD], rows, "ts", created_timestamp_field="created", schema=[Field("score")]
    )
    store = FeatureStore(definitions=[view], online_store=SqliteOnlineStore(":memory:"))
    store.materialize(T0 - timedelta(hours=1), T0 + timedelta(milliseconds=500), progress=False)
    assert store.online_features(["score"], [{"card_id": 1}]).values["score"] == [1.0]
    store.materialize_incremental(T0 + timedelta(hours=1), progress=False)
    assert store.online_features(["score"], [{"card_id": 1}]).values["score"] == [2.0]
