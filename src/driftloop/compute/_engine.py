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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["BatchFunction", "BatchSource", "Engine", "LocalEngine", "batch_source", "write_parts"]

T = TypeVar("T")
R = TypeVar("R")

BatchFunction = Callable[[Any], Any]
"""``fn(batch: pyarrow.Table) -> pyarrow.Table``: one batch in, its output rows out."""


@dataclass(frozen=True)
class BatchSource:
    """The files a batch job reads: Parquet, or CSV parsed as told.

    A CSV is parsed by the given dialect into the columns of ``schema`` (an Arrow schema,
    names in file order): the reader infers nothing, so every worker reads every file
    with the types the caller chose (``driftloop score`` asks DuckDB, as the local
    command reads). Only the empty field is missing, as in DuckDB.

    >>> BatchSource("data/rows.parquet").format
    'parquet'
    """

    paths: str | tuple[str, ...]
    format: Literal["parquet", "csv"] = "parquet"
    schema: Any = None
    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    skip_rows: int = 1  # the header (and any line above it)
    timestamp_formats: tuple[str, ...] = ()

    def csv_options(self) -> dict[str, Any]:
        """``read_options``, ``parse_options`` and ``convert_options`` of pyarrow's CSV
        reader (and of Ray Data's ``read_csv``)."""
        import pyarrow.csv as pc

        if self.schema is None:
            raise ValueError("BatchSource.schema: a CSV source needs the Arrow schema to read")
        return {
            "read_options": pc.ReadOptions(
                column_names=list(self.schema.names), skip_rows=self.skip_rows
            ),
            "parse_options": pc.ParseOptions(
                delimiter=self.delimiter,
                quote_char=self.quote or False,
                escape_char=self.escape or False,
            ),
            "convert_options": pc.ConvertOptions(
                column_types=self.schema,
                null_values=[""],
                strings_can_be_null=True,
                true_values=["true", "True", "TRUE", "t", "T"],
                false_values=["false", "False", "FALSE", "f", "F"],
                timestamp_parsers=[*self.timestamp_formats, pc.ISO8601],
            ),
        }


def batch_source(source: str | Sequence[str] | BatchSource) -> BatchSource:
    """``source`` as a :class:`BatchSource` (paths alone are Parquet)."""
    if isinstance(source, BatchSource):
        return source
    return BatchSource(source if isinstance(source, str) else tuple(source))


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
        source: str | Sequence[str] | BatchSource,
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        """Stream the files of ``source`` (paths: Parquet) through ``make_fn()`` (built
        once per worker, so a model is loaded once) into Parquet parts in
        ``destination``; the number of rows written."""
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
        source: str | Sequence[str] | BatchSource,
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        import pyarrow.dataset as ds

        fn = make_fn()
        files = batch_source(source)
        paths = [files.paths] if isinstance(files.paths, str) else list(files.paths)
        filesystem = None
        if any("://" in p for p in paths):  # URIs (s3://...): pyarrow's file system of theirs
            import pyarrow.fs as pafs

            filesystem = pafs.FileSystem.from_uri(paths[0])[0]
            paths = [pafs.FileSystem.from_uri(p)[1] for p in paths]
        kind: Any = "parquet"
        if files.format == "csv":
            kind = ds.CsvFileFormat(**files.csv_options())
        dataset = ds.dataset(
            paths[0] if len(paths) == 1 else paths, format=kind, filesystem=filesystem
        )
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
