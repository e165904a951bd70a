"""Definitions validate themselves, version by content and refuse dependency cycles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftloop.core.errors import IncompatibleChangeError, InvalidParameterError
from driftloop.features import (
    Aggregation,
    DefinitionRegistry,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeature,
    parse_duration,
)

CARD = Entity("card", ["card_id"])
ROWS = pd.DataFrame({"card_id": [1], "ts": [pd.Timestamp("2025-01-01")], "x": [1.0]})


def view(**changes: object) -> FeatureView:
    args: dict[str, object] = {
        "name": "card_stats",
        "entities": [CARD],
        "source": "data/cards.parquet",
        "timestamp_field": "ts",
        "schema": [Field("x", "float64"), Field("y", "int64")],
    }
    args.update(changes)
    return FeatureView(**args)  # type: ignore[arg-type]


def test_version_changes_with_content_and_only_with_content() -> None:
    assert view().version == view().version
    assert view(ttl="1d").version != view().version
    assert view(schema=[Field("x", "int64"), Field("y", "int64")]).version != view().version


def test_on_demand_cycle_is_refused_with_the_cycle_named() -> None:
    a = OnDemandFeature("a", ["b"], lambda df: df["b"])
    b = OnDemandFeature("b", ["a"], lambda df: df["a"])
    with pytest.raises(InvalidParameterError, match="a -> b -> a"):
        FeatureStore(definitions=[a, b])


def test_bad_definitions_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidParameterError, match="dtype 'decimal'"):
        Field("x", "decimal")
    with pytest.raises(InvalidParameterError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(InvalidParameterError, match="Known: count, sum"):
        Aggregation("amount", "median", "1h")
    with pytest.raises(InvalidParameterError, match="field 'x' twice"):
        view(schema=[Field("x"), Field("x")])
    assert parse_duration("7d") == timedelta(days=7)


def registry(tmp_path: Path) -> DefinitionRegistry:
    return DefinitionRegistry(f"sqlite:///{tmp_path / 'registry.db'}")


def test_removing_a_feature_used_by_a_model_is_refused(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    reg.apply([CARD, view()])
    slimmer = view(schema=[Field("x", "float64")])
    with pytest.raises(IncompatibleChangeError, match="removes feature 'y', used by"):
        reg.apply([CARD, slimmer], in_use=lambda: {"card_stats:y"})
    plan = reg.apply([CARD, slimmer], in_use=set)  # unused: fine
    assert plan.changes[1].details == ("- y",)
    assert [v[2] for v in reg.versions("card_stats")] == [False, True]


def test_removing_a_whole_view_used_by_a_model_needs_a_new_version(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    reg.apply([CARD, view()])
    with pytest.raises(IncompatibleChangeError, match="card_stats"):
        reg.apply([CARD], in_use=lambda: {"x"})
    plan = reg.apply([CARD], in_use=lambda: {"x"}, new_version=True)
    assert any(line.startswith("- feature_view card_stats") for line in plan.lines())
    assert "card_stats" not in reg.active()


def test_stats_are_recorded_per_materialization(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    rows = pd.DataFrame(
        {
            "card_id": [1, 2, 3],
            "ts": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]),
            "x": [1.0, None, 3.0],
        }
    )
    v = FeatureView("card_stats", [CARD], rows, "ts", schema=[Field("x")])
    store = FeatureStore(definitions=[v], registry=reg)
    stats = store.stats("card_stats")
    assert stats["row_count"] == 3
    assert stats["columns"]["x"]["null_rate"] == pytest.approx(1 / 3)
    assert stats["columns"]["x"]["quantiles"]["0.5"] == pytest.approx(2.0)
    store.materialize(pd.Timestamp("2024-12-01"), pd.Timestamp("2025-01-05"), progress=False)
    history = reg.stats_history("card_stats")
    assert len(history) == 1
    assert history[0]["row_count"] == 3
    assert history[0]["freshness_s"] == pytest.approx(2 * 86_400)
