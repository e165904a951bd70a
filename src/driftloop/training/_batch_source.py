"""The files of a batch job (``driftloop score --engine ray``), read as the local command reads.

:func:`file_batches` turns a ``--data`` spec into a :class:`~driftloop.compute.BatchSource`
for the workers: Parquet as it is; CSV with the column types DuckDB infers for the local
command (its :class:`TableTrainingSource`, ``yes``/``no`` kept as text) and the dialect
DuckDB sniffs (delimiter, quote, header, timestamp format), so that pyarrow on every
worker parses each file into the same values. A spec is a file, a folder or a glob of
Parquet or CSV files on this machine, or a URI pyarrow opens (``s3://``, ``gs://``,
``file://``...): a file or a folder. Of a remote CSV, the types are inferred from the
first 8 MiB of its first file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb

from driftloop.compute import BatchSource
from driftloop.core.errors import InvalidParameterError, NotFoundError, SchemaMismatchError
from driftloop.features import ParquetSource
from driftloop.training._source import training_source

__all__ = ["file_batches"]

_SAMPLE_BYTES = 8 * 1024 * 1024
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv", ".tsv": "csv"}


def file_format(name: str) -> str | None:
    """``parquet`` or ``csv`` by the file's name; None for anything else.

    >>> file_format("s3://bucket/rows.CSV.gz"), file_format("rows.json")
    ('csv', None)
    """
    lower = name.lower()
    return next((kind for suffix, kind in _FORMATS.items() if lower.endswith(suffix)), None)


def file_batches(spec: str, root: Path) -> BatchSource:
    """The files ``spec`` names (see the module docs), ready for the workers."""
    if "://" in spec:
        return _remote(spec)
    if spec.lower().startswith("duckdb:"):
        raise InvalidParameterError(
            f"--data {spec[:80]}: Ray reads files (Parquet or CSV), not a duckdb: query; "
            "write the query's rows to Parquet first, or score with --engine local."
        )
    path = Path(spec) if Path(spec).is_absolute() else root / spec
    if path.is_file() and file_format(path.name) is None:
        raise InvalidParameterError(_unknown(spec))
    source = training_source(spec, root=root)  # checks existence and a folder's formats
    try:
        files = [str(p.resolve()) for p in source.paths()]
        if isinstance(source.source, ParquetSource):
            return BatchSource(tuple(files))
        return _csv(tuple(files), source.schema(), Path(files[0]))
    finally:
        source.close()


def _remote(uri: str) -> BatchSource:
    import pyarrow.fs as pafs

    if any(c in uri for c in "*?["):
        raise InvalidParameterError(
            f"--data {uri}: a URI names a file or a folder, not a pattern; give the folder."
        )
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(path)
        found = [info]
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except (OSError, ValueError) as exc:  # unknown scheme, no credentials, unreachable
        raise InvalidParameterError(f"--data {uri} cannot be opened: {exc}") from exc
    if info.type == pafs.FileType.NotFound:
        raise NotFoundError(f"Data to score {uri} does not exist.")
    files = sorted(f.path for f in found if f.is_file and not f.base_name.startswith((".", "_")))
    if not files:
        raise NotFoundError(f"Data to score {uri} is an empty folder.")
    strays = [f for f in files if file_format(f) is None]
    if strays and info.type == pafs.FileType.File:
        raise InvalidParameterError(_unknown(uri))
    if strays:
        raise InvalidParameterError(
            f"--data {uri} holds files neither Parquet nor CSV ({', '.join(strays[:3])}); "
            "point it at a folder of .parquet or of .csv files."
        )
    kinds = {file_format(f) for f in files}
    if len(kinds) > 1:
        raise InvalidParameterError(
            f"--data {uri} holds both Parquet and CSV files; point it at one kind."
        )
    scheme = uri[: uri.index("://") + 3]
    uris = tuple(scheme + f for f in files)
    if kinds == {"parquet"}:
        return BatchSource(uris)
    with tempfile.TemporaryDirectory(prefix="dl-csv-") as tmp:
        sample = Path(tmp) / "sample.csv"
        with fs.open_input_stream(files[0], compression="detect") as stream:
            head = stream.read(_SAMPLE_BYTES)
        if len(head) == _SAMPLE_BYTES:  # keep whole lines
            head = head[: head.rfind(b"\n") + 1] or head
        sample.write_bytes(head)
        source = training_source(str(sample), root=Path(tmp))
        try:
            return _csv(uris, source.schema(), sample)
        finally:
            source.close()


def _csv(paths: tuple[str, ...], schema: Any, first: Path) -> BatchSource:
    """A CSV source: ``schema`` (the local reader's types) and DuckDB's dialect of
    ``first``."""
    connection = duckdb.connect()
    try:
        row = connection.execute(
            "SELECT Delimiter, Quote, Escape, SkipRows, HasHeader, DateFormat, TimestampFormat "
            "FROM sniff_csv(?)",
            [str(first)],
        ).fetchone()
    except duckdb.Error as exc:
        raise SchemaMismatchError(f"CSV {first} cannot be read: {exc}") from None
    finally:
        connection.close()
    assert row is not None
    delimiter, quote, escape, skip, header, date_format, time_format = row
    return BatchSource(
        paths,
        "csv",
        schema,
        delimiter=str(delimiter),
        quote=_char(quote),
        escape=None if escape == quote else _char(escape),  # "" inside quotes: doubled
        skip_rows=int(skip) + bool(header),
        timestamp_formats=tuple(str(f) for f in (time_format, date_format) if f),
    )


def _char(value: Any) -> str | None:
    return None if value in (None, "", "(empty)") else str(value)


def _unknown(spec: str) -> str:
    return (
        f"--data {spec} is neither Parquet nor CSV (by its name); give .parquet, .csv, "
        ".csv.gz or .tsv files."
    )
