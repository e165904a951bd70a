"""The ``Engine`` protocol and the in-process engine.

An engine runs the heavy offline work of a job: ``map`` calls a function on each item
(a partition of a training frame, a batch of search trials) and returns the results in
the items' order; ``map_batches`` streams a Parquet dataset through a function into a
folder of Parquet parts (batch scoring). The local engine does both here, one item
after the other (DuckDB, LightGBM and the scorers use the machine's cores themselves):

>>> engine = LocalEngine()
>>> engine.map(lambda n: n * n, [1, 2, 3])
[1, 4, 9]
>>> engine.workers
1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ["BatchFunction", "Engine", "LocalEngine", "write_parts"]

T = TypeVar("T")
R = TypeVar("R")

BatchFunction = Callable[[Any], Any]
"""``fn(batch: pyarrow.Table) -> pyarrow.Table``: one batch in, its output rows out."""


class Engine(Protocol):
    """Where a job's tasks run: in this process or on a cluster."""

    @property
    def name(self) -> str:
        """``local`` or ``ray``."""
        ...

    @property
    def workers(self) -> int:
        """How many tasks run at once (CPUs of the cluster; 1 in process)."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, in the items' order; a task whose worker dies
        is run again (so ``fn`` must be idempotent)."""
        ...

    def map_batches(
        self,
        make_fn: Callable[[], BatchFunction],
        source: str | Sequence[str],
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        """Stream the Parquet files of ``source`` through ``make_fn()`` (built once per
        worker, so a model is loaded once) into Parquet parts in ``destination``; the
        number of rows written."""
        ...

    def close(self) -> None:
        """Let go of the cluster (an engine that started one stops it)."""
        ...


class LocalEngine:
    """Everything in this process, item after item."""

    name = "local"
    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def map_batches(
        self,
        make_fn: Callable[[], BatchFunction],
        source: str | Sequence[str],
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        import pyarrow.dataset as ds

        fn = make_fn()
        dataset = ds.dataset(source if isinstance(source, str) else list(source), format="parquet")
        batches = (fn(_table(b)) for b in dataset.to_batches(batch_size=batch_rows))
        return write_parts(batches, destination)

    def close(self) -> None:
        return None


def _table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def write_parts(tables: Any, destination: Path, prefix: str = "part") -> int:
    """Write each non-empty table of ``tables`` as ``destination/<prefix>-NNNNN.parquet``;
    the rows written."""
    import pyarrow.parquet as pq

    destination.mkdir(parents=True, exist_ok=True)
    rows = 0
    for n, table in enumerate(tables):
        if table.num_rows:
            pq.write_table(table, destination / f"{prefix}-{n:05d}.parquet")
            rows += table.num_rows
    return rows
