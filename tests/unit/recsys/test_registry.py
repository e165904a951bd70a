from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from driftloop.core import ArtifactIntegrityError, InvalidParameterError
from driftloop.recsys import (
    Recommender,
    RecommendRequest,
    load_recommender,
    register_recommender,
    train_recommender,
)
from driftloop.registry import Registry
from recsys_world import FAST, world


@pytest.fixture(scope="module")
def rec() -> Recommender:
    frame, catalog = world()
    return train_recommender(frame, catalog, config=FAST)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "artifacts"))
    yield reg
    reg.close()


def test_a_registered_recommender_answers_as_it_did_before(
    rec: Recommender, registry: Registry
) -> None:
    mv = register_recommender(registry, "movies", rec, alias="champion")
    assert mv.flavor == "recommender"
    assert set(mv.artifacts) == {"model", "index", "ranker"}
    loaded = load_recommender(registry, "movies", "champion")
    assert loaded.version == "1"
    requests = [
        RecommendRequest("u1", n=10),
        RecommendRequest("newcomer", n=10, session=("i0",)),
        RecommendRequest("x", n=10, context={"gender": "M", "age_group": "18-24"}),
    ]
    for before, after in zip(
        rec.recommend_many(requests), loaded.recommend_many(requests), strict=True
    ):
        assert (after.items, after.level) == (before.items, before.level)
        assert after.version == "1"


def test_a_loaded_index_searches_as_widely_as_its_version_was_set_to(
    rec: Recommender, registry: Registry
) -> None:
    register_recommender(registry, "movies", rec)
    loaded = load_recommender(registry, "movies", "1")
    assert loaded.config.index == FAST.recsys.index
    assert loaded.index.ef == rec.index.ef == FAST.recsys.index.ef


def test_a_model_is_never_loaded_with_another_versions_index(
    rec: Recommender, registry: Registry
) -> None:
    register_recommender(registry, "movies", rec)
    frame, catalog = world(seed=1)
    other = train_recommender(frame, catalog, config=replace(FAST, ranker_fraction=0.0))
    register_recommender(registry, "movies", other)
    first, second = registry.get("movies", 1), registry.get("movies", 2)
    files = {role: registry.store.get(d) for role, d in first.artifacts.items()}
    files["index"] = registry.store.get(second.artifacts["index"])
    from driftloop.recsys._bundle import from_artifacts

    with pytest.raises(ArtifactIntegrityError, match="its own index"):
        from_artifacts(files, "movies", "1")


def test_loading_a_tabular_model_as_a_recommender_says_what_it_is(
    registry: Registry, rec: Recommender
) -> None:
    register_recommender(registry, "movies", rec)
    with pytest.raises(InvalidParameterError, match="recommend"):
        registry.load("movies", 1)
