"""A small library world for partitioned training frames: sensors and sites.

Parquet sources with text, boolean, numeric and missing values, late-arriving rows,
rows tied on their event time, a TTL and a window aggregate; two entity kinds (an
integer key with gaps, a text key), so partitions cut each group of views by its own
keys. Seeded, so a failure reproduces. Nothing in it is an example's column name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.features import Aggregation, Entity, FeatureView, Field, StreamFeatureView

T0 = datetime(2026, 3, 1)
SENSOR = Entity("sensor", ["sensor_id"])
SITE = Entity("site", ["site_code"])
FEATURES = [
    "reading",
    "status",
    "calibrated",
    "firmware",
    "site_region",
    "site_open",
    "pings_1h",
    "mean_level_1h",
]


def write_world(folder: Path, *, sensors: int = 300, rows: int = 6_000, seed: int = 7) -> None:
    """The sources of :func:`definitions` as Parquet files in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ts = T0 + pd.to_timedelta(rng.integers(0, 5 * 86_400, rows), unit="s")
    ts = pd.Series(ts).dt.floor("10min")  # coarse times: many rows tie on (key, time)
    late = rng.random(rows) < 0.1
    readings = pd.DataFrame(
        {
            "sensor_id": rng.integers(0, sensors, rows),
            "ts": ts,
            "created": ts + pd.to_timedelta(np.where(late, 3_600, 0), unit="s"),
            "reading": np.where(rng.random(rows) < 0.15, np.nan, rng.normal(20, 5, rows)),
            "status": pd.Series(rng.choice(["ok", "warn", "fault"], rows)).where(
                rng.random(rows) > 0.1, None
            ),
            "calibrated": pd.Series(rng.random(rows) < 0.5, dtype="boolean").where(
                rng.random(rows) > 0.1, pd.NA
            ),
            "firmware": rng.integers(1, 9, rows),
        }
    )
    readings.to_parquet(folder / "readings.parquet", index=False)
    codes = [f"S{n:03d}" for n in range(40)]
    site_rows = 400
    sites = pd.DataFrame(
        {
            "site_code": rng.choice(codes, site_rows),
            "updated": T0 + pd.to_timedelta(rng.integers(0, 5 * 86_400, site_rows), unit="s"),
            "site_region": pd.Series(rng.choice(["north", "south", "east"], site_rows)).where(
                rng.random(site_rows) > 0.2, None
            ),
            "site_open": rng.random(site_rows) < 0.7,
        }
    )
    sites.to_parquet(folder / "sites.parquet", index=False)
    pings = pd.DataFrame(
        {
            "sensor_id": rng.integers(0, sensors, rows * 2),
            "at": T0 + pd.to_timedelta(rng.integers(0, 5 * 86_400, rows * 2), unit="s"),
            "level": rng.normal(0, 1, rows * 2),
        }
    )
    pings.to_parquet(folder / "pings.parquet", index=False)


def definitions(folder: Path) -> list[object]:
    readings = FeatureView(
        "sensor_readings",
        entities=[SENSOR],
        source=str(folder / "readings.parquet"),
        timestamp_field="ts",
        created_timestamp_field="created",
        ttl="1d",
        schema=[
            Field("reading", "float64"),
            Field("status", "string"),
            Field("calibrated", "bool"),
            Field("firmware", "int64"),
        ],
    )
    sites = FeatureView(
        "site_facts",
        entities=[SITE],
        source=str(folder / "sites.parquet"),
        timestamp_field="updated",
        schema=[Field("site_region", "string"), Field("site_open", "bool")],
    )
    pings = StreamFeatureView(
        "sensor_pings",
        entities=[SENSOR],
        source=str(folder / "pings.parquet"),
        timestamp_field="at",
        aggregations=[
            Aggregation(None, "count", "1h", name="pings_1h"),
            Aggregation("level", "mean", "1h", name="mean_level_1h"),
        ],
    )
    return [SENSOR, SITE, readings, sites, pings]


def entity_rows(count: int = 2_000, *, sensors: int = 300, seed: int = 11) -> pd.DataFrame:
    """Entity rows: a sensor (missing for some rows, so the key column is float), a
    site, a time; plus a passenger column that is not a key."""
    rng = np.random.default_rng(seed)
    sensor = rng.integers(0, sensors + 20, count).astype(float)  # some sensors never seen
    sensor[rng.random(count) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "sensor_id": sensor,
            "site_code": rng.choice([f"S{n:03d}" for n in range(45)], count),
            "event_timestamp": T0
            + pd.to_timedelta(rng.integers(3_600, 6 * 86_400, count), unit="s"),
            "note": rng.choice(["a", "b"], count),
        }
    )


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal row for row: the same columns, dtypes, keys, texts, booleans and nulls; floats
    equal to 1e-12 (a window mean sums its events in the order DuckDB reads them, which a
    partition changes in the last bit)."""
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=1e-12)
