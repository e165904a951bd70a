"""Prediction records: what the monitor reads, and the protocol a record store implements.

A window of records is a pandas DataFrame with the columns of :func:`record_columns` plus one
column per model feature. ``label`` is NaN until the label arrives (``/v1/feedback``).
The audit log implements :class:`RecordSource`; :class:`FrameRecordSource` serves records
already in memory (or read from Parquet) through the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import pandas as pd

from driftloop.core.errors import SchemaMismatchError

__all__ = [
    "AuditRecordSource",
    "FrameRecordSource",
    "RecordSource",
    "WindowReader",
    "check_records",
    "record_columns",
]

_RECORD_COLUMNS: dict[str, str] = {
    "prediction_id": "str",
    "ts": "UTC timestamp",
    "model": "str",
    "version": "int",
    "route": "str",
    "score": "float",
    "decision": "str",
    "label": "float (NaN until known)",
}


def record_columns() -> dict[str, str]:
    """Required columns of a window of prediction records, with their types."""
    return dict(_RECORD_COLUMNS)


@runtime_checkable
class RecordSource(Protocol):
    """Where prediction records come from (the audit log)."""

    def read(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Records of ``model`` with ``start <= ts < end``, labels as known now, sorted by ts."""
        ...

    def models(self) -> list[str]:
        """Names of the models that have records."""
        ...


def check_records(records: pd.DataFrame) -> pd.DataFrame:
    """Refuse a frame without the record columns; return it with ``ts`` as UTC timestamps."""
    missing = [c for c in _RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise SchemaMismatchError(
            f"Prediction records lack column(s) {', '.join(missing)}. "
            f"Required: {', '.join(_RECORD_COLUMNS)}."
        )
    ts = pd.to_datetime(records["ts"], utc=True)
    return records.assign(ts=ts) if not ts.equals(records["ts"]) else records


class FrameRecordSource:
    """Records held in a DataFrame (for example read from the audit log's Parquet export)."""

    def __init__(self, records: pd.DataFrame) -> None:
        self._records = check_records(records).sort_values("ts", kind="stable")

    def read(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        r = self._records
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        lo = lo.tz_localize("UTC") if lo.tzinfo is None else lo
        hi = hi.tz_localize("UTC") if hi.tzinfo is None else hi
        chosen = (r["model"] == model) & (r["ts"] >= lo) & (r["ts"] < hi)
        return r.loc[chosen].reset_index(drop=True)

    def models(self) -> list[str]:
        return sorted(str(m) for m in self._records["model"].unique())

    @classmethod
    def from_parquet(cls, path: str) -> FrameRecordSource:
        """Records from a Parquet file or folder."""
        return cls(pd.read_parquet(path))


@runtime_checkable
class WindowReader(Protocol):
    """The part of ``driftloop.audit.AuditLog`` the monitor reads."""

    def window(
        self,
        start: datetime,
        end: datetime,
        *,
        model: str | None = None,
        version: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with ``start <= ts < end`` (UTC), oldest first, labels as known."""
        ...


class AuditRecordSource:
    """Records read from the audit log by window (``AuditRecordSource(open_audit_log(
    settings.audit.url, root=settings.root), models=["fraud"])``); the audit log does not
    list models, so the models to monitor are given (the registry knows them)."""

    def __init__(self, log: WindowReader, models: Sequence[str]) -> None:
        self._log = log
        self._models = list(models)

    def read(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        return self._log.window(start, end, model=model)

    def models(self) -> list[str]:
        return list(self._models)
