"""Every point-in-time path agrees with a brute-force reference, on random data.

The data is made to hit the edges: many rows share an event time (and some a created
time too), rows arrive late, entity rows fall exactly on a TTL boundary, timestamps come
naive, in UTC or in other zones, keys are integers or strings, and keys, values and
created times may be null. The reference is the rule of docs/features.md in plain
Python: among the rows of the entity's key stamped at or before the event time, created
at or before it (a null created time is the event time) and no older than the TTL, the
greatest event time, then the greatest created time, then the greatest feature values in
schema order (nulls lowest).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnlineStore,
    SqliteOnlineStore,
)

T0 = datetime(2025, 1, 1)
STEP = timedelta(minutes=10)  # every time is a multiple of this: ties and exact TTL edges
FEATURES = ["score", "count", "label", "flag"]
SCHEMA = [
    Field("score", "float64"),
    Field("count", "int64"),
    Field("label", "string"),
    Field("flag", "bool"),
]
ZONES = [None, "UTC", "America/New_York", "Asia/Kolkata"]  # naive means UTC
KEYS = {"int": [1, 2, None], "str": ["a", "é", None]}
# Few distinct values, so that rows tied on both times often differ only in later features.
VALUES: dict[str, list[Any]] = {
    "score": [None, -0.5, 1.0, 2.5],
    "count": [None, 0, 7],
    "label": [None, "x", "y"],
    "flag": [None, False, True],
}
PANDAS_DTYPES = {"score": "float64", "count": "Int64", "label": "string", "flag": "boolean"}
# hypothesis runs: few examples, no deadline (a busy machine), the same examples every run
FAST = settings(max_examples=60, deadline=None, derandomize=True)
# One DuckDB database for every example: connecting costs more than a small frame.
DUCKDB = duckdb.connect()


@dataclass(frozen=True)
class Case:
    """Feature rows, entity rows and the view's options, all times naive UTC."""

    key_type: str
    rows: list[dict[str, Any]]
    entities: list[tuple[Any, datetime]]
    has_created: bool
    ttl: timedelta | None
    source_zone: str | None
    entity_zone: str | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    key_type = draw(st.sampled_from(sorted(KEYS)))
    keys = st.sampled_from(KEYS[key_type])
    steps = st.integers(0, 4)  # few event times: many ties
    row = st.fixed_dictionaries(
        {
            "key": keys,
            "ts": steps,
            # created after the event time by 0..3 steps (late rows), or unknown
            "delay": st.one_of(st.none(), st.integers(0, 3)),
            **{f: st.sampled_from(VALUES[f]) for f in FEATURES},
        }
    )
    rows = []
    for r in draw(st.lists(row, min_size=2, max_size=20)):
        ts = T0 + r["ts"] * STEP
        created = None if r["delay"] is None else ts + r["delay"] * STEP
        rows.append({"key": r["key"], "ts": ts, "created": created} | {f: r[f] for f in FEATURES})
    entities = draw(st.lists(st.tuples(keys, st.integers(-1, 9)), min_size=1, max_size=15))
    return Case(
        key_type=key_type,
        rows=rows,
        entities=[(k, T0 + s * STEP) for k, s in entities],
        has_created=draw(st.booleans()),
        ttl=draw(st.sampled_from([None, STEP, 3 * STEP])),
        source_zone=draw(st.sampled_from(ZONES)),
        entity_zone=draw(st.sampled_from(ZONES)),
    )


def in_zone(times: list[datetime | None], zone: str | None) -> pd.Series:
    series = pd.Series(pd.to_datetime(times), dtype="datetime64[us]")
    if zone is None:
        return series
    return series.dt.tz_localize("UTC").dt.tz_convert(zone)


def key_series(keys: list[Any], key_type: str) -> pd.Series:
    return pd.Series(keys, dtype="Int64" if key_type == "int" else "object")


def source_frame(case: Case) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "key": key_series([r["key"] for r in case.rows], case.key_type),
            "ts": in_zone([r["ts"] for r in case.rows], case.source_zone),
            "created": in_zone([r["created"] for r in case.rows], case.source_zone),
        }
    )
    for f in FEATURES:
        frame[f] = pd.Series([r[f] for r in case.rows], dtype=PANDAS_DTYPES[f])
    return frame


def entity_frame(case: Case) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": key_series([k for k, _ in case.entities], case.key_type),
            "event_timestamp": in_zone([t for _, t in case.entities], case.entity_zone),
        }
    )


def feature_store(case: Case, online: OnlineStore | None = None) -> FeatureStore:
    view = FeatureView(
        "stats",
        entities=[Entity("thing", ["key"])],
        source=source_frame(case),
        timestamp_field="ts",
        created_timestamp_field="created" if case.has_created else None,
        ttl=case.ttl,
        schema=SCHEMA,
    )
    return FeatureStore(
        definitions=[view],
        connection=DUCKDB,
        online_store=online or SqliteOnlineStore(":memory:"),
    )


def _ordered(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def reference(case: Case, key: Any, at: datetime) -> dict[str, Any]:
    """The features of ``key`` as of ``at``, by brute force over every row."""
    usable = []
    for r in case.rows:
        created = r["created"] if case.has_created and r["created"] is not None else r["ts"]
        if key is None or r["key"] != key or r["ts"] > at:
            continue
        if case.ttl is not None and r["ts"] < at - case.ttl:
            continue
        if case.has_created and created > at:
            continue
        usable.append((r["ts"], created, *map(_ordered, (r[f] for f in FEATURES)), r))
    if not usable:
        return dict.fromkeys(FEATURES)
    latest = max(usable, key=lambda u: u[:-1])[-1]
    return {f: latest[f] for f in FEATURES}


def plain(value: Any) -> Any:
    """A frame or online value as a Python value, null as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {f: plain(v) for f, v in zip(FEATURES, row, strict=True)}
        for row in frame[FEATURES].itertuples(index=False)
    ]


def training_frame(case: Case, strategy: str) -> pd.DataFrame:
    store = feature_store(case)
    store.offline.join_strategy = strategy
    return store.training_frame(entity_frame(case), [f"stats:{f}" for f in FEATURES])


@FAST
@given(cases(), st.data())
def test_training_frame_equals_brute_force_and_both_joins_agree(
    case: Case, data: st.DataObject
) -> None:
    asof = training_frame(case, "asof")
    assert frame_rows(asof) == [reference(case, key, at) for key, at in case.entities]
    # the entity columns come back as given, time zone included
    pd.testing.assert_frame_equal(asof[["key", "event_timestamp"]], entity_frame(case))
    # the range join gives the same frame, whatever the physical order of the rows
    shuffled = replace(case, rows=list(data.draw(st.permutations(case.rows))))
    pd.testing.assert_frame_equal(training_frame(shuffled, "range"), asof)


def latest_time(case: Case) -> datetime:
    """A time at or after every row's event and created time."""
    times = [r["ts"] for r in case.rows] + [r["created"] for r in case.rows if r["created"]]
    return max(times)


def check_online_equals_training(case: Case, online: OnlineStore, cut: int) -> None:
    """Materialize in two runs split at ``cut`` steps, then read every key online as of the
    latest time and compare with the training frame for entity rows at that time."""
    store = feature_store(case, online)
    now = latest_time(case)
    end = now + timedelta(microseconds=1)  # materialization's end is exclusive
    middle = min(T0 + cut * STEP, now)
    store.materialize(T0 - timedelta(days=1), middle, progress=False)
    store.materialize(middle, end, progress=False)
    keys = KEYS[case.key_type]
    # as_of in another zone: the same instant
    as_of = now.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    got = store.online_features(
        [f"stats:{f}" for f in FEATURES], [{"key": k} for k in keys], as_of=as_of
    )
    entity = pd.DataFrame({"key": key_series(keys, case.key_type), "event_timestamp": now})
    frame = store.training_frame(entity, [f"stats:{f}" for f in FEATURES])
    online_rows = [{f: plain(got.values[f][i]) for f in FEATURES} for i in range(len(keys))]
    assert online_rows == frame_rows(frame)
    assert frame_rows(frame) == [reference(case, k, now) for k in keys]


@settings(FAST, max_examples=40)
@given(cases(), st.integers(0, 15))
def test_online_vector_after_materializing_equals_the_training_row_sqlite(
    case: Case, cut: int
) -> None:
    check_online_equals_training(case, SqliteOnlineStore(":memory:"), cut)


_prefixes = itertools.count()


@settings(FAST, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases(), st.integers(0, 15))
def test_online_vector_after_materializing_equals_the_training_row_redis(
    redis_url: str, case: Case, cut: int
) -> None:
    # The fixture empties the test database once; each example writes under its own prefix.
    from driftloop.features._redis import RedisOnlineStore

    online = RedisOnlineStore(redis_url, prefix=f"pit:{next(_prefixes)}:")
    try:
        check_online_equals_training(case, online, cut)
    finally:
        online.close()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Los_Angeles"])
def test_iso_strings_with_an_offset_are_read_as_the_instant_they_name(
    zone: str, tmp_path: Path
) -> None:
    at = pd.Timestamp(T0 + STEP, tz="UTC").tz_convert(zone)
    (tmp_path / "stats.csv").write_text(f"key,ts,score\n1,{at.isoformat()},1.0\n")
    view = FeatureView("stats", [Entity("thing", ["key"])], "stats.csv", "ts", [Field("score")])
    store = FeatureStore(definitions=[view], root=tmp_path)
    # entity times as ISO strings too: a microsecond before the row, and exactly at it
    stamps = [(at - timedelta(microseconds=1)).isoformat(), at.isoformat()]
    entity = pd.DataFrame({"key": [1, 1], "event_timestamp": stamps})
    scores = store.training_frame(entity, ["score"])["score"]
    assert pd.isna(scores[0])
    assert scores[1] == 1.0
