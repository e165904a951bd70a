"""Where a feature view's rows come from: Parquet, CSV, a DuckDB table or query, a frame.

Every source turns into a DuckDB relation (a SQL ``FROM`` item), so the offline store
reads them all the same way, inside DuckDB:

>>> ParquetSource("data/transactions.parquet").describe()
{'kind': 'parquet', 'path': 'data/transactions.parquet'}
>>> as_source("events/*.csv")
CsvSource(path='events/*.csv')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from driftloop.core.errors import InvalidParameterError

__all__ = [
    "CsvSource",
    "DataFrameSource",
    "ParquetSource",
    "QuerySource",
    "Source",
    "TableSource",
    "as_source",
]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _resolve(path: str, root: Path) -> str:
    p = Path(path)
    if "://" in path or p.is_absolute():
        return path
    return str(root / p)


class Source(Protocol):
    """A relation of rows that DuckDB can read."""

    def relation_sql(self, root: Path, register: Any) -> str:
        """The SQL ``FROM`` item; ``register(name, frame)`` makes a frame visible by name."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (part of the view's content hash)."""
        ...


@dataclass(frozen=True)
class ParquetSource:
    """One Parquet file, a glob (``data/*.parquet``) or a URL DuckDB can read."""

    path: str

    def relation_sql(self, root: Path, register: Any) -> str:
        return f"read_parquet({_quote_literal(_resolve(self.path, root))})"

    def describe(self) -> dict[str, Any]:
        return {"kind": "parquet", "path": self.path}


@dataclass(frozen=True)
class CsvSource:
    """A CSV file or glob; column types are inferred by DuckDB."""

    path: str

    def relation_sql(self, root: Path, register: Any) -> str:
        return f"read_csv_auto({_quote_literal(_resolve(self.path, root))})"

    def describe(self) -> dict[str, Any]:
        return {"kind": "csv", "path": self.path}


@dataclass(frozen=True)
class TableSource:
    """A table (or view) in the offline DuckDB database."""

    table: str

    def relation_sql(self, root: Path, register: Any) -> str:
        return ".".join('"' + part.replace('"', '""') + '"' for part in self.table.split("."))

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "table": self.table}


@dataclass(frozen=True)
class QuerySource:
    """A SQL query run by the offline DuckDB database; ``{root}`` in it is replaced by the
    project folder (so ``read_parquet('{root}/data/x.parquet')`` works from anywhere)."""

    sql: str

    def relation_sql(self, root: Path, register: Any) -> str:
        return "(" + self.sql.replace("{root}", str(root).replace("'", "''")) + ")"

    def describe(self) -> dict[str, Any]:
        return {"kind": "query", "sql": self.sql}


@dataclass(frozen=True)
class DataFrameSource:
    """An in-memory pandas DataFrame (tests, notebooks, small reference data)."""

    frame: pd.DataFrame = field(repr=False, compare=False)
    name: str = "frame"

    def relation_sql(self, root: Path, register: Any) -> str:
        digest = hashlib.sha256(str(id(self.frame)).encode()).hexdigest()[:10]
        alias = f"__df_{digest}"
        register(alias, self.frame)
        return alias

    def describe(self) -> dict[str, Any]:
        columns = {str(c): str(t) for c, t in self.frame.dtypes.items()}
        return {"kind": "dataframe", "name": self.name, "columns": columns}


def as_source(value: Any) -> Source:
    """A source from a path (``.parquet``/glob or ``.csv``), a frame, or a source."""
    if isinstance(value, ParquetSource | CsvSource | TableSource | QuerySource | DataFrameSource):
        return value
    if isinstance(value, pd.DataFrame):
        return DataFrameSource(value)
    if isinstance(value, str | Path):
        text = str(value)
        if text.lower().endswith((".csv", ".csv.gz")):
            return CsvSource(text)
        if text.lower().endswith(".parquet") or text.endswith("/") or "*" in text:
            return ParquetSource(text)
        raise InvalidParameterError(
            f"Source '{text}' is neither a .parquet nor a .csv path. Use ParquetSource, "
            "CsvSource, TableSource(table) or QuerySource(sql) to say what it is."
        )
    raise InvalidParameterError(
        "A feature view source must be a path, a DataFrame or a Source; "
        f"got {type(value).__name__}."
    )
