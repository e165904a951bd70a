"""Parquet written before the archive kept served_at, missing and outputs still reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.audit import SqliteAuditLog

T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
_OLD_SCHEMA = pa.schema(  # the archive's columns until then, literally
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
    ]
)


def test_an_archive_file_written_before_the_new_fields_still_reads(tmp_path: Path) -> None:
    part = tmp_path / "archive" / "date=2026-02-01"
    part.mkdir(parents=True)
    row = {
        "prediction_id": "old",
        "ts": T0,
        "model": "fraud",
        "version": "1",
        "route": "champion",
        "score": 0.25,
        "decision": "approve",
        "latency_ms": 1.0,
        "entity_keys": '{"card_id": "c1"}',
        "features": '{"amount": 5.0}',
        "feature_ts": "{}",
        "explanation": None,
        "label": 1.0,
        "label_ts": T0 + timedelta(days=1),
    }
    pq.write_table(pa.Table.from_pylist([row], schema=_OLD_SCHEMA), part / "part-old.parquet")
    log = SqliteAuditLog(tmp_path / "audit.db", archive=tmp_path / "archive")
    try:
        got = log.get("old")
        assert (got.score, got.label, got.features) == (0.25, 1.0, {"amount": 5.0})
        assert (got.served_at, got.missing, got.outputs) == (None, (), None)
        frame = log.window(T0, T0 + timedelta(hours=1))
        assert frame["prediction_id"].tolist() == ["old"]
        assert frame["served_at"].isna().all()
        assert frame["missing"].tolist() == [[]]
    finally:
        log.close()
