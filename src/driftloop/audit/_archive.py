"""Compacted audit records: Parquet files partitioned by UTC day.

Layout: ``<folder>/date=YYYY-MM-DD/part-<uuid>.parquet``. A file is written to a
temporary name, flushed to disk and renamed, so a crash leaves no half file; a crash
after the rename but before the rows leave the database only duplicates rows, which
readers drop by prediction id.

Columns added to the schema later (``served_at``, ``missing``, ``outputs``, ``tenant``)
read as null from files written before them (a null tenant is ``default``): an archive is
never rewritten.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ParquetArchive"]

_JSON_FIELDS = ("entity_keys", "features", "feature_ts", "explanation", "outputs")
_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.string()),
        ("route", pa.string()),
        ("score", pa.float64()),
        ("decision", pa.string()),
        ("latency_ms", pa.float64()),
        ("entity_keys", pa.string()),
        ("features", pa.string()),
        ("feature_ts", pa.string()),
        ("explanation", pa.string()),
        ("label", pa.float64()),
        ("label_ts", pa.timestamp("us", tz="UTC")),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("missing", pa.string()),  # JSON list, null when none
        ("outputs", pa.string()),
        ("tenant", pa.string()),
    ]
)


class ParquetArchive:
    """Append-only Parquet partitions of audit rows (the decoded form of ``_sql``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def append(self, rows: list[dict[str, Any]]) -> list[Path]:
        by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_day[row["ts"].date()].append(row)
        written = []
        for day, day_rows in sorted(by_day.items()):
            part = self.folder / f"date={day.isoformat()}"
            part.mkdir(parents=True, exist_ok=True)
            path = part / f"part-{uuid.uuid4().hex}.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(_table(day_rows), tmp)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            tmp.rename(path)
            written.append(path)
        return written

    def _files(self, start: date | None = None, end: date | None = None) -> list[Path]:
        if not self.folder.is_dir():
            return []
        files = []
        for part in sorted(self.folder.glob("date=*")):
            day = date.fromisoformat(part.name.removeprefix("date="))
            if (start is None or day >= start) and (end is None or day <= end):
                files.extend(sorted(part.glob("part-*.parquet")))
        return files

    def prune(self, before: date) -> list[date]:
        """Delete the days before ``before`` (whole partitions); the days deleted."""
        gone = []
        for part in sorted(self.folder.glob("date=*")) if self.folder.is_dir() else []:
            day = date.fromisoformat(part.name.removeprefix("date="))
            if day >= before:
                break
            for path in part.iterdir():
                path.unlink()
            part.rmdir()
            gone.append(day)
        return gone

    def rows(
        self, start: datetime, end: datetime, model: str | None, version: str | None
    ) -> list[dict[str, Any]]:
        out = []
        for path in self._files(start.date(), (end - timedelta(microseconds=1)).date()):
            for row in pq.read_table(path, schema=_SCHEMA).to_pylist():
                if not start <= row["ts"] < end:
                    continue
                if model is not None and row["model"] != model:
                    continue
                if version is not None and row["version"] != version:
                    continue
                out.append(_decode(row))
        return out

    def find(self, prediction_id: str) -> list[dict[str, Any]]:
        for path in self._files():
            table = pq.read_table(
                path, schema=_SCHEMA, filters=[("prediction_id", "=", prediction_id)]
            )
            if table.num_rows:
                return [_decode(table.to_pylist()[0])]
        return []


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    encoded = [
        {
            **row,
            **{k: None if row[k] is None else orjson.dumps(row[k]).decode() for k in _JSON_FIELDS},
            "missing": orjson.dumps(row["missing"]).decode() if row["missing"] else None,
        }
        for row in rows
    ]
    return pa.Table.from_pylist(encoded, schema=_SCHEMA)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        **{k: None if row[k] is None else orjson.loads(row[k]) for k in _JSON_FIELDS},
        "missing": [] if row["missing"] is None else orjson.loads(row["missing"]),
        "tenant": row.get("tenant") or "default",
    }
