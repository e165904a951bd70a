"""The ANN index over item embeddings (hnswlib HNSW, inner product), saved as bytes so it
is a versioned artifact of its model version.

hnswlib was chosen by measurement on 1M x 64 items (benchmarks/recsys.py, docs/recsys.md):
top-100 recall against exact search and query p99 at the chosen ``M`` / ``ef``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
from numpy.typing import NDArray

__all__ = ["ItemIndex"]


class ItemIndex:
    """Item vectors by item position (label ``k`` is the ``k``-th item of the model)."""

    def __init__(self, index: Any, dim: int) -> None:
        self._index = index
        self.dim = dim

    @classmethod
    def build(
        cls,
        vectors: NDArray[Any],
        *,
        m: int = 32,
        ef_construction: int = 200,
        ef: int = 200,
        threads: int = 1,
    ) -> ItemIndex:
        count, dim = vectors.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(count, 1), ef_construction=ef_construction, M=m)
        index.set_num_threads(threads)
        index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(count))
        index.set_ef(ef)
        return cls(index, dim)

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    def query(self, vectors: NDArray[Any], k: int) -> tuple[NDArray[np.int64], NDArray[Any]]:
        """Item positions and inner products of the ``k`` nearest, one row per query (all
        queries of a batch in one call)."""
        k = min(k, len(self))
        self._index.set_ef(max(self._index.ef, k))
        labels, distances = self._index.knn_query(
            np.ascontiguousarray(vectors, dtype=np.float32), k=k
        )
        return labels.astype(np.int64), 1.0 - distances  # hnswlib's ip distance is 1 - dot

    def vectors(self, labels: list[int]) -> NDArray[np.float32]:
        """The stored vectors of ``labels``."""
        return np.asarray(self._index.get_items(labels), dtype=np.float32)

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "index.bin"
            self._index.save_index(str(path))
            return path.read_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, *, ef: int = 200) -> ItemIndex:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "index.bin"
            path.write_bytes(data)
            index = hnswlib.Index(space="ip", dim=dim)
            index.load_index(str(path))
        index.set_ef(ef)
        index.set_num_threads(1)
        return cls(index, dim)
