"""The ANN index over item embeddings (hnswlib HNSW, inner product), saved as bytes so it
is a versioned artifact of its model version.

hnswlib was chosen by measurement on 1M x 64 items (benchmarks/recsys.py, docs/recsys.md):
top-100 recall against exact search and query p99 at the chosen ``M`` / ``ef``; the
settings (``[recsys.index]``, :class:`~driftloop.core.config.IndexConfig`) default to
those measured there.

A small catalogue (at most :data:`EXACT_CELLS` items x dimensions) is searched exactly
instead, with one matrix product over the index's own vectors: cheaper than the graph
there (measured on one core, 51 queries of k=180 at ef 200, dim 48: 16 us a query
against 94 us at 1,682 items, 56 against 175 at 10,000), and never less exact. The graph
is built and saved all the same, so an artifact serves either way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
from numpy.typing import NDArray

from driftloop.core.config import IndexConfig

__all__ = ["EXACT_CELLS", "ItemIndex"]

EXACT_CELLS = 480_000  # items x dimensions up to which a query is exact (10,000 x 48)


class ItemIndex:
    """Item vectors by item position (label ``k`` is the ``k``-th item of the model)."""

    def __init__(self, index: Any, dim: int, ef: int, *, exact_cells: int = EXACT_CELLS) -> None:
        self._index = index
        self.dim = dim
        self.ef = ef
        # the vectors of a catalogue small enough to search exactly (read at the first query)
        self._exact_cells = exact_cells
        self._matrix: NDArray[np.float32] | None = None

    @property
    def ef(self) -> int:
        """Candidates weighed per graph query (hnswlib searches ``max(ef, k)``; an exact
        search weighs every item)."""
        return int(self._index.ef)

    @ef.setter
    def ef(self, ef: int) -> None:
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise ValueError(f"ItemIndex ef must be a positive integer, got {ef!r}")
        self._index.set_ef(ef)

    @property
    def exact(self) -> bool:
        """Whether a query is an exact search (a catalogue of at most ``exact_cells``
        items x dimensions) rather than the graph's."""
        return 0 < len(self) * self.dim <= self._exact_cells

    @classmethod
    def build(
        cls,
        vectors: NDArray[Any],
        settings: IndexConfig | None = None,
        *,
        threads: int = 1,
        exact_cells: int = EXACT_CELLS,
    ) -> ItemIndex:
        """The index of ``vectors`` (one row per item), built on ``threads`` threads and
        queried on one."""
        settings = settings or IndexConfig()
        count, dim = vectors.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(
            max_elements=max(count, 1), ef_construction=settings.ef_construction, M=settings.m
        )
        index.set_num_threads(threads)
        index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(count))
        index.set_num_threads(1)
        return cls(index, dim, settings.ef, exact_cells=exact_cells)

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    def query(self, vectors: NDArray[Any], k: int) -> tuple[NDArray[np.int64], NDArray[Any]]:
        """Item positions and inner products of the ``k`` nearest, one row per query (all
        queries of a batch in one call)."""
        k = min(k, len(self))
        asked = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.exact:
            return self._exact_query(asked, k)
        labels, distances = self._index.knn_query(asked, k=k)
        return labels.astype(np.int64), 1.0 - distances  # hnswlib's ip distance is 1 - dot

    def _exact_query(
        self, asked: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        matrix = self._matrix
        if matrix is None:
            matrix = self._matrix = self.vectors(list(range(len(self))))
        scores = asked @ matrix.T
        if k < scores.shape[1]:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(scores, top, axis=1)
        else:
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        order = np.argsort(-scores, axis=1, kind="stable")
        labels = np.take_along_axis(top, order, axis=1).astype(np.int64)
        return labels, np.take_along_axis(scores, order, axis=1)

    def vectors(self, labels: list[int]) -> NDArray[np.float32]:
        """The stored vectors of ``labels``."""
        return np.asarray(self._index.get_items(labels), dtype=np.float32)

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "index.bin"
            self._index.save_index(str(path))
            return path.read_bytes()

    @classmethod
    def from_bytes(
        cls, data: bytes, dim: int, *, ef: int, exact_cells: int = EXACT_CELLS
    ) -> ItemIndex:
        """The index saved by :meth:`to_bytes`, searched with ``ef`` (hnswlib does not
        save it: it is a setting of the version, ``[recsys.index] ef``)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "index.bin"
            path.write_bytes(data)
            index = hnswlib.Index(space="ip", dim=dim)
            index.load_index(str(path))
        index.set_num_threads(1)
        return cls(index, dim, ef, exact_cells=exact_cells)
