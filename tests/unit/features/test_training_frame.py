"""Training frames are point-in-time correct: no future, no stale, no late rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftloop.core.errors import DataValidationError, SchemaMismatchError, UnknownFeatureError
from driftloop.features import (
    Aggregation,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeature,
    StreamFeatureView,
)

T0 = datetime(2025, 1, 1)


@pytest.fixture(autouse=True, params=["asof", "range"])
def join_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every point-in-time rule must hold for both ways a view is joined."""
    from driftloop.features._offline import OfflineStore

    monkeypatch.setattr(OfflineStore, "join_strategy", request.param)
    return str(request.param)


CARD = Entity("card", ["card_id"])


def store_with(frame: pd.DataFrame, **view_args: object) -> FeatureStore:
    view = FeatureView(
        "card_stats",
        entities=[CARD],
        source=frame,
        timestamp_field="ts",
        schema=[Field("score", "float64")],
        **view_args,  # type: ignore[arg-type]
    )
    return FeatureStore(definitions=[view])


def events(*times: datetime, card: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"card_id": [card] * len(times), "event_timestamp": list(times)})


def test_training_frame_never_sees_a_row_one_microsecond_after_the_event() -> None:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1],
            "ts": [T0, T0 + timedelta(hours=1, microseconds=1)],
            "score": [1.0, 2.0],
        }
    )
    frame = store_with(rows).training_frame(events(T0 + timedelta(hours=1)), ["score"])
    assert frame["score"].tolist() == [1.0]


def test_training_frame_uses_a_row_stamped_exactly_at_the_event() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [5.0]})
    assert store_with(rows).training_frame(events(T0), ["score"])["score"].tolist() == [5.0]


def test_row_older_than_ttl_gives_null() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [1.0]})
    store = store_with(rows, ttl="1h")
    frame = store.training_frame(
        events(T0 + timedelta(minutes=59), T0 + timedelta(hours=1, microseconds=1)), ["score"]
    )
    assert frame["score"].iloc[0] == 1.0
    assert pd.isna(frame["score"].iloc[1])


def test_late_arriving_row_is_not_used_and_the_earlier_row_is() -> None:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1],
            "ts": [T0, T0 + timedelta(hours=1)],
            "created": [T0, T0 + timedelta(hours=5)],  # the second row arrived late
            "score": [1.0, 2.0],
        }
    )
    store = store_with(rows, created_timestamp_field="created", ttl="1d")
    frame = store.training_frame(
        events(T0 + timedelta(hours=2), T0 + timedelta(hours=6)), ["score"]
    )
    assert frame["score"].tolist() == [1.0, 2.0]


def test_late_fallback_still_respects_ttl() -> None:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1],
            "ts": [T0, T0 + timedelta(hours=3)],
            "created": [T0, T0 + timedelta(hours=9)],
            "score": [1.0, 2.0],
        }
    )
    store = store_with(rows, created_timestamp_field="created", ttl="2h")
    frame = store.training_frame(events(T0 + timedelta(hours=4)), ["score"])
    assert pd.isna(frame["score"].iloc[0])


def test_training_frame_keeps_entity_rows_their_order_and_extra_columns() -> None:
    rows = pd.DataFrame({"card_id": [1, 2], "ts": [T0, T0], "score": [1.0, 2.0]})
    entity = pd.DataFrame(
        {
            "card_id": [2, 9, 1],
            "event_timestamp": [T0 + timedelta(hours=h) for h in (3, 2, 1)],
            "label": [1, 0, 0],
        }
    )
    frame = store_with(rows).training_frame(entity, ["card_stats:score"])
    assert frame["card_id"].tolist() == [2, 9, 1]
    assert frame["label"].tolist() == [1, 0, 0]
    assert frame["score"].iloc[0] == 2.0
    assert pd.isna(frame["score"].iloc[1])
    arrow = store_with(rows).training_frame(entity, ["score"], output="arrow")
    assert isinstance(arrow, pa.Table)
    assert arrow.column("card_id").to_pylist() == [2, 9, 1]
    assert arrow.column("score").to_pylist()[0] == 2.0


def _window_view(frame: pd.DataFrame) -> StreamFeatureView:
    return StreamFeatureView(
        "card_tx",
        entities=[CARD],
        source=frame,
        timestamp_field="ts",
        aggregations=[
            Aggregation(None, "count", "1h"),
            Aggregation("amount", "sum", "30m"),
            Aggregation("amount", "mean", "2h"),
            Aggregation("amount", "min", "1h"),
            Aggregation("amount", "max", "1h"),
            Aggregation("terminal_id", "count_distinct", "2h"),
        ],
    )


def random_events(rng: np.random.Generator, n: int, cards: int = 5) -> pd.DataFrame:
    seconds = rng.integers(0, 6 * 3600, n)
    return pd.DataFrame(
        {
            "card_id": rng.integers(0, cards, n),
            "ts": pd.Timestamp(T0) + pd.to_timedelta(seconds, unit="s"),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "terminal_id": rng.integers(0, 8, n),
        }
    )


def brute_force(tx: pd.DataFrame, view: StreamFeatureView, card: int, t: pd.Timestamp) -> dict:
    out = {}
    for agg in view.aggregations:
        lo = t - agg.window
        part = tx[(tx["card_id"] == card) & (tx["ts"] >= lo) & (tx["ts"] < t)]
        col = part[agg.column] if agg.column else None
        if agg.function == "count":
            out[agg.name] = len(part)
        elif agg.function == "count_distinct":
            out[agg.name] = col.nunique()
        elif agg.function == "sum":
            out[agg.name] = float(col.sum())
        elif len(part) == 0:
            out[agg.name] = None
        else:
            out[agg.name] = float(getattr(col, agg.function)())
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_aggregates_at_event_time_equal_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tx = random_events(rng, 300)
    view = _window_view(tx)
    store = FeatureStore(definitions=[view])
    probes = pd.DataFrame(
        {
            "card_id": rng.integers(0, 6, 60),
            "event_timestamp": pd.Timestamp(T0)
            + pd.to_timedelta(rng.integers(0, 7 * 3600, 60), unit="s"),
        }
    )
    # some probes exactly at an event's time (not counted) and exactly one window after
    # an event (counted: the lower bound is inclusive)
    probes.loc[:9, "card_id"] = tx["card_id"].iloc[:10].to_numpy()
    probes.loc[:9, "event_timestamp"] = tx["ts"].iloc[:10].to_numpy()
    probes.loc[10:19, "card_id"] = tx["card_id"].iloc[:10].to_numpy()
    probes.loc[10:19, "event_timestamp"] = (tx["ts"].iloc[:10] + pd.Timedelta(hours=1)).to_numpy()
    frame = store.training_frame(probes, [f"card_tx:{n}" for n in view.feature_names])
    for i, probe in probes.iterrows():
        expected = brute_force(tx, view, int(probe["card_id"]), probe["event_timestamp"])
        for name, value in expected.items():
            got = frame.loc[i, name]
            if value is None:
                assert pd.isna(got), (name, i)
            else:
                assert got == pytest.approx(value, rel=1e-9, abs=1e-9), (name, i)


def test_on_demand_feature_combines_request_field_and_looked_up_feature() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [4.0]})
    view = FeatureView("card_stats", [CARD], rows, "ts", schema=[Field("score")])
    ratio = OnDemandFeature("ratio", ["amount", "score"], lambda df: df["amount"] / df["score"])
    store = FeatureStore(definitions=[view, ratio])
    entity = events(T0).assign(amount=[10.0])
    assert store.training_frame(entity, ["ratio"])["ratio"].tolist() == [2.5]


def test_unknown_feature_error_lists_the_known_ones() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [4.0]})
    with pytest.raises(UnknownFeatureError, match=r"'scroe'.*Known: card_stats:score"):
        store_with(rows).training_frame(events(T0), ["scroe"])


def test_entity_frame_without_timestamp_or_join_key_is_refused_by_name() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [4.0]})
    store = store_with(rows)
    with pytest.raises(DataValidationError, match="timestamp column 'event_timestamp'"):
        store.training_frame(pd.DataFrame({"card_id": [1]}), ["score"])
    with pytest.raises(DataValidationError, match=r"join key.*card_id"):
        store.training_frame(pd.DataFrame({"event_timestamp": [T0]}), ["score"])


def test_source_not_matching_schema_names_columns_and_types() -> None:
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": ["high"]})
    with pytest.raises(SchemaMismatchError, match=r"'score' is VARCHAR, declared float64"):
        store_with(rows).training_frame(events(T0), ["score"])
    missing = pd.DataFrame({"card_id": [1], "ts": [T0]})
    with pytest.raises(SchemaMismatchError, match=r"'score' is missing"):
        store_with(missing).training_frame(events(T0), ["score"])


def test_parquet_and_csv_sources_are_read_in_duckdb(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    rows = pd.DataFrame({"card_id": [1], "ts": [T0], "score": [3.0]})
    rows.to_parquet(folder / "a.parquet")
    rows.to_csv(folder / "b.csv", index=False)
    for source in ("a.parquet", "*.parquet", "b.csv"):
        view = FeatureView("v", [CARD], source, "ts", schema=[Field("score")])
        store = FeatureStore(definitions=[view], root=folder)
        assert store.training_frame(events(T0), ["score"])["score"].tolist() == [3.0]


def test_asof_and_range_joins_agree_on_random_late_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftloop.features._offline import OfflineStore

    rng = np.random.default_rng(11)
    n = 2_000
    seconds = rng.choice(5 * 86_400, n, replace=False)  # no ties: their order is undefined
    rows = pd.DataFrame(
        {
            "card_id": rng.integers(0, 30, n),
            "ts": pd.Timestamp(T0) + pd.to_timedelta(seconds, unit="s"),
            "created": pd.Timestamp(T0)
            + pd.to_timedelta(seconds + rng.integers(0, 7_200, n), unit="s"),
            "score": rng.normal(size=n),
        }
    )
    entity = pd.DataFrame(
        {
            "card_id": rng.integers(0, 32, 500),
            "event_timestamp": pd.Timestamp(T0)
            + pd.to_timedelta(rng.integers(0, 6 * 86_400, 500), unit="s"),
        }
    )
    frames = []
    for strategy in ("asof", "range"):
        monkeypatch.setattr(OfflineStore, "join_strategy", strategy)
        store = store_with(rows, created_timestamp_field="created", ttl="6h")
        frames.append(store.training_frame(entity, ["score"]))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["score"].notna().sum() > 100
    # Hundreds of entity rows in random order come back in that order, for both outputs.
    pd.testing.assert_frame_equal(frames[0][list(entity.columns)], entity)
    arrow = store.training_frame(entity, ["score"], output="arrow").to_pandas()
    pd.testing.assert_series_equal(arrow["score"], frames[1]["score"], check_dtype=False)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("entity_rows", [1, 200])
def test_rows_tied_on_event_time_give_the_latest_created_whatever_the_file_order(
    order: list[int], entity_rows: int, tmp_path: Path
) -> None:
    rows = pd.DataFrame(
        {
            "card_id": [1, 1],
            "ts": [T0, T0],
            "created": [T0, T0 + timedelta(seconds=1)],
            "score": [1.0, 2.0],
        }
    ).iloc[order]
    rows.to_parquet(tmp_path / "cards.parquet", index=False)
    view = FeatureView(
        "card_stats",
        [CARD],
        "cards.parquet",
        "ts",
        created_timestamp_field="created",
        ttl="1d",
        schema=[Field("score")],
    )
    store = FeatureStore(definitions=[view], root=tmp_path)
    later = T0 + timedelta(hours=1)
    frame = store.training_frame(events(*[later] * entity_rows), ["score"])
    assert frame["score"].tolist() == [2.0] * entity_rows
    store.materialize(T0, later, progress=False)
    online = store.online_features(["score"], [{"card_id": 1}], as_of=later)
    assert online.values["score"] == [2.0]


def test_rows_tied_on_both_times_give_the_greatest_values() -> None:
    rows = pd.DataFrame({"card_id": [1, 1, 1], "ts": [T0] * 3, "score": [2.0, None, 1.0]})
    for ordered in (rows, rows.iloc[::-1]):
        store = store_with(ordered)
        assert store.training_frame(events(T0), ["score"])["score"].tolist() == [2.0]


def test_time_zones_of_entity_and_source_name_instants() -> None:
    rows = pd.DataFrame(
        {"card_id": [1, 1], "ts": [T0, T0 + timedelta(hours=1)], "score": [1.0, 2.0]}
    )
    entity = events(T0 + timedelta(minutes=59), T0 + timedelta(hours=1))
    expected = store_with(rows).training_frame(entity, ["score"])
    assert expected["score"].tolist() == [1.0, 2.0]
    for source_zone, entity_zone in [("UTC", "Europe/Paris"), ("America/New_York", None)]:
        zoned_rows = rows.assign(ts=rows["ts"].dt.tz_localize("UTC").dt.tz_convert(source_zone))
        zoned = entity.copy()
        if entity_zone is not None:
            stamps = entity["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert(entity_zone)
            zoned = entity.assign(event_timestamp=stamps)
        frame = store_with(zoned_rows).training_frame(zoned, ["score"])
        assert frame["score"].tolist() == [1.0, 2.0]
        # the entity frame's own time zone is kept
        pd.testing.assert_series_equal(frame["event_timestamp"], zoned["event_timestamp"])
