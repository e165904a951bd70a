"""Training frames cut by entity-key hash and joined partition by partition on an engine.

The entity rows of each group of views that share join keys are cut into ``parts`` by a
hash of the keys (:func:`~driftloop.features._offline.key_hash`); partition ``p`` is one
task: a fresh DuckDB reads only the source rows whose keys hash to ``p`` and runs the
same point-in-time SQL as the local frame (ASOF join, late and tied rows re-checked,
window aggregates) over its slice. A key's rows all land in one partition, so each
partition's answer is the local answer for its rows; the driver puts the rows back in
entity order and the frame equals the local one row for row.

Sources must be readable from every worker: Parquet or CSV paths (on shared storage, or
URLs DuckDB reads such as ``s3://``), queries over them, or frames (shipped with the
task). A table of the driver's DuckDB database is refused: workers cannot open it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from driftloop.compute import Engine
from driftloop.core.errors import InvalidParameterError
from driftloop.features._offline import OfflineStore, ViewRequest, entity_order, key_hash
from driftloop.features._sources import TableSource

__all__ = ["FrameTask", "partitioned_training_frame", "run_frame_task"]

ROW = "__entity_row"


@dataclass(frozen=True)
class FrameTask:
    """One partition of one group of views: what a worker needs to join it."""

    root: str
    requests: tuple[ViewRequest, ...]
    timestamp_field: str
    entity: pd.DataFrame  # join keys, timestamp and ROW (the row's place in the frame)
    part: int
    parts: int
    join_strategy: str
    threads: int | None


def run_frame_task(task: FrameTask) -> Any:
    """The features of the task's entity rows as an Arrow table (``ROW`` first)."""
    connection = duckdb.connect()
    try:
        if task.threads is not None:
            connection.execute(f"SET threads = {int(task.threads)}")
        store = OfflineStore(connection, Path(task.root), key_slice=(task.part, task.parts))
        store.join_strategy = task.join_strategy
        table = store.training_frame(task.entity, task.timestamp_field, task.requests, "arrow")
    finally:
        connection.close()
    features = [f for r in task.requests for f in r.features]
    return table.select([ROW, *features])


def partitioned_training_frame(
    offline: OfflineStore,
    engine: Engine,
    entity_df: pd.DataFrame,
    timestamp_field: str,
    requests: Sequence[ViewRequest],
    output: str,
    *,
    parts: int,
) -> Any:
    """What :meth:`OfflineStore.training_frame` returns, computed in ``parts`` hash
    partitions per group of views on ``engine`` (see the module docs)."""
    for request in requests:
        if isinstance(request.view.source_, TableSource):
            raise InvalidParameterError(
                f"Feature view '{request.view.name}' reads the table "
                f"'{request.view.source_.table}' of the offline DuckDB database, which "
                "workers cannot open; give it a Parquet, CSV or query source to build "
                "training frames partitioned (compute.partitions above 1 or engine 'ray')."
            )
    groups: dict[tuple[str, ...], list[ViewRequest]] = {}
    for request in requests:
        groups.setdefault(tuple(request.view.join_keys), []).append(request)
    threads = 1 if engine.name != "local" else None
    tasks: list[FrameTask] = []
    for keys, group in groups.items():
        entity = entity_df[[*keys, timestamp_field]].assign(**{ROW: np.arange(len(entity_df))})
        assigned = _partition_of(offline.connection, entity[list(keys)], keys, parts)
        for part in range(parts):
            rows = entity[assigned == part]
            if len(rows):
                tasks.append(
                    FrameTask(
                        root=str(offline.root),
                        requests=tuple(group),
                        timestamp_field=timestamp_field,
                        entity=rows.reset_index(drop=True),
                        part=part,
                        parts=parts,
                        join_strategy=offline.join_strategy,
                        threads=threads,
                    )
                )
    results = engine.map(run_frame_task, tasks)
    return _assemble(entity_df, requests, tasks, results, output, offline.connection)


def _partition_of(
    connection: duckdb.DuckDBPyConnection, keys_df: pd.DataFrame, keys: Sequence[str], parts: int
) -> Any:
    """Each entity row's partition, by the hash the workers filter their sources by."""
    name = "__entity_keys"
    connection.register(name, keys_df)
    try:
        types = {
            str(r[0]): str(r[1])
            for r in connection.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
        }
        sql = f"SELECT {key_hash(keys, types)} % {parts} AS p FROM {name}"
        assigned = connection.sql(sql).fetchnumpy()["p"]
    finally:
        connection.unregister(name)
    return np.asarray(assigned, dtype=np.int64)


def _assemble(
    entity_df: pd.DataFrame,
    requests: Sequence[ViewRequest],
    tasks: Sequence[FrameTask],
    results: Sequence[Any],
    output: str,
    connection: duckdb.DuckDBPyConnection,
) -> Any:
    """The entity frame with every group's features, back in entity order."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    by_group: dict[tuple[str, ...], list[Any]] = {}
    for task, table in zip(tasks, results, strict=True):
        by_group.setdefault(tuple(task.requests[0].view.join_keys), []).append(table)
    for tables in by_group.values():
        joined = pa.concat_tables(tables)
        position = entity_order(joined.column(ROW).to_numpy(), len(entity_df))
        features = joined.drop_columns([ROW]).take(position)
        columns.update(zip(features.column_names, features.columns, strict=True))
    names = [f for r in requests for f in r.features]
    if output == "arrow":
        out = pa.Table.from_pandas(entity_df, preserve_index=False)
        for name in names:
            out = out.append_column(name, columns[name])
        return out
    # DuckDB turns the features into pandas as it does for the local frame (same dtypes)
    frame = connection.from_arrow(pa.table({name: columns[name] for name in names})).df()
    return pd.concat([entity_df.reset_index(drop=True), frame], axis=1)
