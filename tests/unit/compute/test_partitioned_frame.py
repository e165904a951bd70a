"""A training frame cut by entity-key hash equals the local frame row for row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftloop.compute import LocalEngine
from driftloop.core.errors import InvalidParameterError
from driftloop.features import FeatureStore, FeatureView, Field, TableSource
from partition_world import (
    FEATURES,
    SENSOR,
    assert_same_frame,
    definitions,
    entity_rows,
    write_world,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("partition-world")
    write_world(folder)
    return folder


@pytest.fixture(params=["asof", "range"])
def join_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from driftloop.features._offline import OfflineStore

    monkeypatch.setattr(OfflineStore, "join_strategy", request.param)
    return str(request.param)


def frame(world: Path, parts: int, output: str = "pandas", entity: Any = None) -> Any:
    store = FeatureStore(definitions=definitions(world), engine=LocalEngine(), partitions=parts)
    try:
        rows = entity if entity is not None else entity_rows()
        return store.training_frame(rows, FEATURES, output=output)
    finally:
        store.close()


@pytest.mark.usefixtures("join_strategy")
@pytest.mark.parametrize("parts", [2, 5])
def test_partitioned_frame_equals_the_local_frame_row_for_row(world: Path, parts: int) -> None:
    local = frame(world, 1)
    # the world exercises what a partition could get wrong: texts, booleans, nulls, windows
    for column in ("status", "calibrated", "site_region"):
        assert local[column].notna().any(), column
        assert local[column].isna().any(), column
    assert (local["pings_1h"] > 0).any()
    assert_same_frame(frame(world, parts), local)


def test_partitioned_arrow_frame_equals_the_local_one(world: Path) -> None:
    partitioned, local = frame(world, 3, "arrow"), frame(world, 1, "arrow")
    assert partitioned.schema.equals(local.schema, check_metadata=True)
    assert_same_frame(partitioned.to_pandas(), local.to_pandas())


def test_entity_rows_keep_their_order_and_index_free_shape(world: Path) -> None:
    rows = entity_rows(500).iloc[::-1].set_axis(range(1_000, 1_500))
    out = frame(world, 4, entity=rows)
    assert out["event_timestamp"].tolist() == rows["event_timestamp"].tolist()
    assert out["note"].tolist() == rows["note"].tolist()


def test_a_table_of_the_offline_database_is_refused_for_partitioned_frames() -> None:
    view = FeatureView(
        "sensor_table",
        entities=[SENSOR],
        source=TableSource("readings"),
        timestamp_field="ts",
        schema=[Field("reading", "float64")],
    )
    store = FeatureStore(definitions=[SENSOR, view], engine=LocalEngine(), partitions=2)
    with pytest.raises(InvalidParameterError, match="sensor_table"):
        store.training_frame(entity_rows(10), ["reading"])
    store.close()
