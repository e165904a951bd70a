"""Where training rows come from: any table DuckDB can read, or a DataFrame.

A :class:`TrainingSource` gives the rows of a time window (the label, the event time and
every other column) and a fingerprint of its content, so a checkpointed pipeline reruns
exactly when the data changed. :func:`training_source` reads a spec as written in
``driftloop.toml`` or on the command line:

* a Parquet or CSV file (``data/loans.csv``), a glob, or a folder of either;
* ``duckdb:SELECT ...``: a query (``{root}`` in it is the project folder), for joins;
* a pandas DataFrame (from Python).

>>> import pandas as pd
>>> frame = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=4, freq="D"),
...                       "y": [0, 1, 0, 1]})
>>> source = training_source(frame)
>>> len(source.window("t", start=pd.Timestamp("2026-01-02")))
3
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd

from driftloop.core.errors import InsufficientDataError, NotFoundError, SchemaMismatchError
from driftloop.features import CsvSource, DataFrameSource, ParquetSource, QuerySource

__all__ = ["TableTrainingSource", "TrainingSource", "training_source"]

_QUERY = re.compile(r"^duckdb:", re.IGNORECASE)
_FileSource = ParquetSource | CsvSource


@runtime_checkable
class TrainingSource(Protocol):
    """Rows to train on, read by time window."""

    def describe(self) -> str:
        """What the rows are, for people (a path, a query)."""
        ...

    def fingerprint(self) -> str:
        """A hash of the content: it changes when the rows do."""
        ...

    def columns(self) -> list[str]:
        """The column names, without reading the rows."""
        ...

    def window(
        self,
        timestamp: str | None,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end`` (every row without a timestamp)."""
        ...


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class TableTrainingSource:
    """A table DuckDB reads (files, a query or a frame; see the module docs)."""

    def __init__(self, source: _FileSource | QuerySource | DataFrameSource, root: Path) -> None:
        self.source = source
        self.root = root
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._relation: str | None = None

    def _open(self) -> tuple[duckdb.DuckDBPyConnection, str]:
        if self._connection is None:
            connection = duckdb.connect()
            connection.execute("SET TimeZone = 'UTC'")
            try:
                relation = self.source.relation_sql(self.root, connection.register)
                connection.execute(f"SELECT * FROM {relation} LIMIT 0")
                if isinstance(self.source, CsvSource):
                    relation = _csv_words_stay_text(connection, relation)
            except duckdb.IOException as exc:
                connection.close()
                raise NotFoundError(
                    f"Training data {self.describe()} cannot be read: {exc}"
                ) from None
            except duckdb.Error as exc:
                connection.close()
                raise SchemaMismatchError(
                    f"Training data {self.describe()} is not a table DuckDB can read: {exc}"
                ) from None
            self._connection, self._relation = connection, relation
        assert self._relation is not None
        return self._connection, self._relation

    def describe(self) -> str:
        source = self.source
        if isinstance(source, QuerySource):
            return f"query `{source.sql.strip()[:200]}`"
        if isinstance(source, DataFrameSource):
            return f"a DataFrame of {len(source.frame):,} rows"
        return source.path

    def columns(self) -> list[str]:
        connection, relation = self._open()
        return [d[0] for d in connection.execute(f"SELECT * FROM {relation} LIMIT 0").description]

    def schema(self) -> Any:
        """The columns as DuckDB reads them, as an Arrow schema (no rows read)."""
        connection, relation = self._open()
        return connection.sql(f"SELECT * FROM {relation} LIMIT 0").arrow().schema

    def paths(self) -> list[Path]:
        """The files read (none for a query or a frame)."""
        if isinstance(self.source, ParquetSource | CsvSource):
            return _files(self.source.path, self.root)
        return []

    def fingerprint(self) -> str:
        """For files, a hash of their bytes; for a query or frame, of its rows (inside
        DuckDB, order-independent)."""
        digest = hashlib.sha256(self.describe().encode())
        if isinstance(self.source, ParquetSource | CsvSource):
            for path in _files(self.source.path, self.root):
                digest.update(path.name.encode())
                with path.open("rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
            return digest.hexdigest()
        connection, relation = self._open()
        count, total = connection.execute(
            f"SELECT count(*), sum(hash(s)) FROM (SELECT * FROM {relation}) s"
        ).fetchall()[0]
        digest.update(f"{count}:{total}".encode())
        return digest.hexdigest()

    def window(
        self,
        timestamp: str | None,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        connection, relation = self._open()
        columns = self.columns()
        where, params = [], []
        if timestamp is not None and (start is not None or end is not None):
            if timestamp not in columns:
                raise SchemaMismatchError(
                    f"Training data {self.describe()} has no timestamp column '{timestamp}'. "
                    f"Columns: {', '.join(columns)}."
                )
            column = f'"{timestamp}"'
            for bound, op in ((start, ">="), (end, "<")):
                if bound is not None:
                    where.append(f"{column} {op} ?")
                    params.append(_naive_utc(bound))
        sql = f"SELECT * FROM {relation}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        try:
            frame = connection.execute(sql, params).df()
        except duckdb.Error as exc:
            raise SchemaMismatchError(
                f"Reading {self.describe()} for the window [{start}, {end}) failed: {exc}"
            ) from None
        if frame.empty:
            raise InsufficientDataError(
                f"The training window [{start}, {end}) of {self.describe()} holds no rows."
            )
        return frame

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_BOOLEAN_TEXT = {"true", "false", "t", "f", "1", "0"}


def _csv_words_stay_text(connection: duckdb.DuckDBPyConnection, relation: str) -> str:
    """DuckDB's CSV sniffer reads ``yes``/``no`` (and ``y``/``n``) as booleans; a label or
    a category spelt that way must keep its words (a class is then ``yes``, not ``true``).
    Columns whose text is not ``true``/``false`` (or 1/0) are read as text again."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    booleans = [str(row[0]) for row in described if str(row[1]).upper() == "BOOLEAN"]
    if not booleans:
        return relation
    raw = (
        relation[: relation.index("(") + 1]
        + relation[relation.index("(") + 1 : -1]
        + ", all_varchar = true)"
    )
    words = []
    for column in booleans:
        quoted = '"' + column.replace('"', '""') + '"'
        seen = connection.execute(
            f"SELECT DISTINCT lower(trim({quoted})) FROM {raw} WHERE {quoted} IS NOT NULL LIMIT 10"
        ).fetchall()
        if not {str(v[0]) for v in seen} <= _BOOLEAN_TEXT:
            words.append(column)
    if not words:
        return relation
    types = ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in words)
    return relation[:-1] + f", types = {{{types}}})"


def _naive_utc(value: pd.Timestamp) -> Any:
    value = pd.Timestamp(value)
    return (value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value).to_pydatetime()


def _files(path: str, root: Path) -> list[Path]:
    base = Path(path) if Path(path).is_absolute() else root / path
    found = sorted(base.parent.glob(base.name)) if any(c in path for c in "*?[") else [base]
    return [f for f in found if f.is_file()]


def training_source(spec: Any, *, root: str | Path = ".") -> TableTrainingSource:
    """A source from a spec (see the module docs); relative paths are under ``root``."""
    root = Path(root)
    if isinstance(spec, pd.DataFrame):
        return TableTrainingSource(DataFrameSource(spec, "training"), root)
    if isinstance(spec, TableTrainingSource):
        return spec
    text = str(spec)
    if _QUERY.match(text):
        return TableTrainingSource(QuerySource(_QUERY.sub("", text, count=1).strip()), root)
    path = Path(text) if Path(text).is_absolute() else root / text
    if any(c in text for c in "*?["):
        if not _files(text, root):
            raise NotFoundError(f"No file matches the training data pattern {text!r}.")
        return _file_source(text, text, root)
    if path.is_dir():
        kinds = {
            p.suffix.lower() for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv")
        }
        if len(kinds) != 1:
            found = "both Parquet and CSV files" if kinds else "no .parquet or .csv file"
            raise SchemaMismatchError(
                f"Training data folder {text} holds {found}; point data at one file, a glob "
                "(data/*.parquet) or a duckdb: query."
            )
        return _file_source(str(Path(text) / f"*{kinds.pop()}"), text, root)
    if not path.is_file():
        raise NotFoundError(f"Training data {text} does not exist (looked in {path}).")
    return _file_source(text, text, root)


def _file_source(path: str, given: str, root: Path) -> TableTrainingSource:
    lower = path.lower()
    if lower.endswith((".csv", ".csv.gz", ".tsv")):
        return TableTrainingSource(CsvSource(path), root)
    if lower.endswith(".parquet"):
        return TableTrainingSource(ParquetSource(path), root)
    raise SchemaMismatchError(
        f"Training data {given} is neither Parquet nor CSV (by its name); use a .parquet or "
        ".csv file, or a duckdb: query (e.g. duckdb:SELECT * FROM read_json('x.json'))."
    )
