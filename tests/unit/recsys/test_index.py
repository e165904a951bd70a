from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

from driftloop.core.config import IndexConfig, RecsysConfig
from driftloop.recsys import ItemIndex
from driftloop.recsys._index import EXACT_CELLS


def unit_vectors(count: int, dim: int, seed: int) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact(queries: NDArray[np.float32], items: NDArray[np.float32], k: int) -> list[set[int]]:
    return [set(np.argsort(-row)[:k].tolist()) for row in queries @ items.T]


@pytest.mark.parametrize("exact_cells", [EXACT_CELLS, 0], ids=["matrix", "graph"])
def test_a_movielens_sized_catalogue_is_searched_exactly_with_the_default_settings(
    exact_cells: int,
) -> None:
    items, queries = unit_vectors(1_682, 48, seed=0), unit_vectors(50, 48, seed=1)
    index = ItemIndex.build(items, exact_cells=exact_cells)
    assert index.exact == (exact_cells > 0)
    labels, scores = index.query(queries, 100)
    found = [set(row.tolist()) for row in labels]
    assert found == exact(queries, items, 100)
    np.testing.assert_allclose(scores[:, 0], (queries @ items.T).max(axis=1), atol=1e-5)


def test_a_query_for_more_than_ef_gets_them_all_and_leaves_ef_as_set() -> None:
    items = unit_vectors(500, 16, seed=2)
    index = ItemIndex.build(items, IndexConfig(m=8, ef_construction=40, ef=10), exact_cells=0)
    labels, _ = index.query(items[:3], 300)
    assert labels.shape == (3, 300)
    assert all(len(set(row.tolist())) == 300 for row in labels)
    assert index.ef == 10  # a wide query does not widen the next ones


def test_the_settings_reach_the_index_and_ef_survives_its_bytes() -> None:
    items = unit_vectors(300, 16, seed=3)
    index = ItemIndex.build(items, IndexConfig(m=8, ef_construction=40, ef=37), exact_cells=0)
    assert index.ef == 37
    again = ItemIndex.from_bytes(index.to_bytes(), 16, ef=index.ef, exact_cells=0)
    assert (len(again), again.ef) == (300, 37)
    np.testing.assert_array_equal(again.query(items[:5], 10)[0], index.query(items[:5], 10)[0])


def test_a_small_catalogue_is_searched_exactly_best_first_and_a_large_one_by_the_graph() -> None:
    items, queries = unit_vectors(400, 16, seed=4), unit_vectors(7, 16, seed=5)
    index = ItemIndex.build(items, exact_cells=400 * 16)
    assert index.exact
    assert not ItemIndex.build(items, exact_cells=400 * 16 - 1).exact
    labels, scores = index.query(queries, 25)
    dots = queries @ items.T
    for row, found, got in zip(dots, labels, scores, strict=True):
        np.testing.assert_array_equal(found, np.argsort(-row, kind="stable")[:25])
        np.testing.assert_allclose(got, row[found], rtol=1e-6)
    everything, _ = index.query(queries, 1_000)  # more than the catalogue: all of it
    assert everything.shape == (7, 400)
    assert all(sorted(row.tolist()) == list(range(400)) for row in everything)
    loaded = ItemIndex.from_bytes(index.to_bytes(), 16, ef=index.ef, exact_cells=400 * 16)
    np.testing.assert_array_equal(loaded.query(queries, 25)[0], labels)


@pytest.mark.parametrize("ef", [0, -3, True, 2.5, "100"])
def test_a_bad_ef_is_refused_naming_it(ef: object) -> None:
    index = ItemIndex.build(unit_vectors(20, 4, seed=4))
    with pytest.raises(ValueError, match="ef must be a positive integer"):
        index.ef = ef  # type: ignore[assignment]
    assert index.ef == IndexConfig().ef


@pytest.mark.parametrize(
    ("section", "field"),
    [({"m": 1}, "m"), ({"ef": 0}, "ef"), ({"ef_construction": "wide"}, "ef_construction")],
)
def test_bad_index_settings_are_refused_naming_the_field(
    section: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=rf"index\.{field}"):
        RecsysConfig.model_validate({"index": section})
