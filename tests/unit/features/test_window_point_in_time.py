"""Window aggregates: the training frame, a brute-force reference and the online store agree.

The rule (docs/features.md): a window as of time ``t`` covers the entity's events stamped
in ``[t - window, t)`` and, when the view has a created time, created before ``t`` (a null
created time is the event time). So an event's own training row never counts the event,
nor any other event at the same instant, and a server scoring it sees the same: it reads
as of ``t`` the events pushed or materialized before ``t``.

The streams are made to hit the edges: few distinct times (many ties, events exactly one
window apart), several integer or string keys (and null ones), null values, late events
(created after their event time), every aggregation kind over float, integer and string
columns, entity times in other zones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftloop.features import (
    Aggregation,
    Entity,
    FeatureStore,
    OnlineStore,
    SqliteOnlineStore,
    StreamFeatureView,
)

T0 = datetime(2025, 1, 1)
STEP = timedelta(minutes=10)  # every time is a multiple: ties and events exactly on an edge
AGGREGATIONS = [
    Aggregation(None, "count", "20m"),
    Aggregation("amount", "sum", "30m"),
    Aggregation("amount", "mean", "20m"),
    Aggregation("amount", "min", "10m"),
    Aggregation("amount", "max", "30m"),
    Aggregation("items", "sum", "10m"),
    Aggregation("items", "max", "20m"),
    Aggregation("terminal", "count_distinct", "30m"),
    Aggregation("items", "count_distinct", "20m"),
]
NAMES = [a.name for a in AGGREGATIONS]
KEYS = {"int": [1, 2, 3, None], "str": ["a", "é", "b c", None]}
# sums of these are exact in binary floating point, so both sides may be compared exactly
VALUES: dict[str, list[Any]] = {
    "amount": [None, -0.5, 1.0, 2.5, 10.25],
    "items": [None, 0, 3, 7],
    "terminal": [None, "x", "y", "z"],
}
PANDAS_DTYPES = {"amount": "float64", "items": "Int64", "terminal": "string"}
ZONES = [None, "UTC", "America/New_York", "Asia/Kolkata"]  # naive means UTC
FAST = settings(max_examples=40, deadline=None, derandomize=True)
DUCKDB = duckdb.connect()


@dataclass(frozen=True)
class Stream:
    """Events of one stream view (naive UTC times) and how the entity frame is given."""

    key_type: str
    events: list[dict[str, Any]]
    has_created: bool
    entity_zone: str | None


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    key_type = draw(st.sampled_from(sorted(KEYS)))
    event = st.fixed_dictionaries(
        {
            "key": st.sampled_from(KEYS[key_type]),
            "ts": st.integers(0, 6),  # few event times: many ties
            # created 0..3 steps after the event (late), or unknown
            "delay": st.one_of(st.none(), st.integers(0, 3)),
            **{c: st.sampled_from(VALUES[c]) for c in VALUES},
        }
    )
    events = []
    for e in draw(st.lists(event, min_size=1, max_size=25)):
        ts = T0 + e["ts"] * STEP
        created = None if e["delay"] is None else ts + e["delay"] * STEP
        events.append({"key": e["key"], "ts": ts, "created": created} | {c: e[c] for c in VALUES})
    # copies of some events: the same content, created at the same or another time
    copies = st.tuples(st.integers(0, len(events) - 1), st.integers(0, 3))
    for i, delay in draw(st.lists(copies, max_size=4)):
        events.append(events[i] | {"created": events[i]["ts"] + delay * STEP})
    return Stream(key_type, events, draw(st.booleans()), draw(st.sampled_from(ZONES)))


def key_series(keys: list[Any], key_type: str) -> pd.Series:
    return pd.Series(keys, dtype="Int64" if key_type == "int" else "object")


def in_zone(times: list[datetime | None], zone: str | None) -> pd.Series:
    series = pd.Series(pd.to_datetime(times), dtype="datetime64[us]")
    if zone is None:
        return series
    return series.dt.tz_localize("UTC").dt.tz_convert(zone)


def source_frame(stream: Stream) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "key": key_series([e["key"] for e in stream.events], stream.key_type),
            "ts": in_zone([e["ts"] for e in stream.events], None),
            "created": in_zone([e["created"] for e in stream.events], None),
        }
    )
    for c, dtype in PANDAS_DTYPES.items():
        frame[c] = pd.Series([e[c] for e in stream.events], dtype=dtype)
    return frame


def view(stream: Stream) -> StreamFeatureView:
    return StreamFeatureView(
        "tx",
        entities=[Entity("thing", ["key"])],
        source=source_frame(stream),
        timestamp_field="ts",
        created_timestamp_field="created" if stream.has_created else None,
        aggregations=AGGREGATIONS,
    )


def feature_store(stream: Stream, online: OnlineStore | None = None) -> FeatureStore:
    return FeatureStore(
        definitions=[view(stream)],
        connection=DUCKDB,
        online_store=online or SqliteOnlineStore(":memory:"),
    )


def created(stream: Stream, event: dict[str, Any]) -> datetime:
    known = event["created"] if stream.has_created else None
    return event["ts"] if known is None else known


def known_before(stream: Stream, at: datetime) -> list[dict[str, Any]]:
    """The events a server scoring at ``at`` has seen: stamped and created before it."""
    return [stream.events[i] for i in known_indices(stream, at)]


def known_indices(stream: Stream, at: datetime, *, at_too: bool = False) -> list[int]:
    """The positions of the events known before ``at`` (or, ``at_too``, at ``at`` too)."""
    if at_too:
        return [
            i for i, e in enumerate(stream.events) if e["ts"] <= at and created(stream, e) <= at
        ]
    return [i for i, e in enumerate(stream.events) if e["ts"] < at and created(stream, e) < at]


def reference(stream: Stream, key: Any, at: datetime) -> dict[str, Any]:
    """Every aggregate of ``key`` as of ``at``, by brute force over the events."""
    mine = [e for e in known_before(stream, at) if key is not None and e["key"] == key]
    out: dict[str, Any] = {}
    for agg in AGGREGATIONS:
        inside = [e for e in mine if e["ts"] >= at - agg.window]  # type: ignore[operator]
        if agg.function == "count":
            out[agg.name] = len(inside)
            continue
        values = [e[agg.column] for e in inside if e[agg.column] is not None]
        if agg.function == "count_distinct":
            out[agg.name] = len(set(values))
        elif agg.function == "sum":
            out[agg.name] = float(sum(values))
        elif not values:
            out[agg.name] = None
        elif agg.function == "mean":
            out[agg.name] = math.fsum(values) / len(values)
        else:
            out[agg.name] = float(min(values) if agg.function == "min" else max(values))
    return out


def plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def training_rows(stream: Stream, scored: list[tuple[Any, datetime]]) -> list[dict[str, Any]]:
    """The training-frame rows of entity rows ``(key, time)``, the times in the stream's
    entity zone."""
    entity = pd.DataFrame(
        {
            "key": key_series([k for k, _ in scored], stream.key_type),
            "event_timestamp": in_zone([t for _, t in scored], stream.entity_zone),
        }
    )
    frame = feature_store(stream).training_frame(entity, [f"tx:{n}" for n in NAMES])
    return [
        {n: plain(v) for n, v in zip(NAMES, row, strict=True)}
        for row in frame[NAMES].itertuples(index=False)
    ]


@FAST
@given(streams(), st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 10)), max_size=10))
def test_every_event_training_row_excludes_itself_and_equals_brute_force(
    stream: Stream, probes: list[tuple[int, int]]
) -> None:
    keys = KEYS[stream.key_type]
    scored = [(e["key"], e["ts"]) for e in stream.events]
    scored += [(keys[k], T0 + s * STEP) for k, s in probes]
    assert training_rows(stream, scored) == [reference(stream, k, t) for k, t in scored]


def online_rows(store: FeatureStore, keys: list[Any], at: datetime) -> list[dict[str, Any]]:
    """What the server reads for entities ``keys`` scored at ``at`` (as of ``at``, given in
    another zone: the same instant)."""
    as_of = at.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    got = store.online_features([f"tx:{n}" for n in NAMES], [{"key": k} for k in keys], as_of=as_of)
    return [{n: plain(got.values[n][i]) for n in NAMES} for i in range(len(keys))]


def check_served_equals_trained(
    stream: Stream, online: OnlineStore, push: bool, ahead: bool
) -> None:
    """Score every event in time order, as a server would: before each event time ``t``,
    feed the online store what became known since the previous one (by an incremental
    materialization run, or by pushes, each re-sending part of the previous batch as an
    at-least-once stream does); then the vector read as of ``t`` for each event at ``t``
    must equal its training-frame row.

    ``ahead``: the store has the events known at ``t`` too, the scored ones included (a
    stream consumer that pushed them before the server read); they must not count.
    """
    store = feature_store(stream, online)
    previous = T0 - timedelta(days=1)
    sent: list[int] = []
    for at in sorted({e["ts"] for e in stream.events}):
        if push:
            new = [i for i in known_indices(stream, at, at_too=ahead) if i not in sent]
            batch = source_frame(stream).iloc[sent[-2:] + new]
            if len(batch):
                store.push("tx", batch)
            sent += new
        else:
            end = at + timedelta(microseconds=1) if ahead else at  # the end is exclusive
            store.materialize(previous, end, progress=False)
            previous = end
        keys = [e["key"] for e in stream.events if e["ts"] == at]
        trained = training_rows(stream, [(k, at) for k in keys])
        assert online_rows(store, keys, at) == trained, at


def event(
    key: Any, step: int, delay: int | None = None, amount: float | None = 1.0
) -> dict[str, Any]:
    ts = T0 + step * STEP
    created = None if delay is None else ts + delay * STEP
    return {"key": key, "ts": ts, "created": created, "amount": amount, "items": 3, "terminal": "x"}


# A label known two steps late: the run that ends before it is known cannot write it, the
# next one must, though its event time is before that run's start.
LATE = Stream("int", [event(1, 0, delay=2), event(1, 1), event(1, 3)], True, None)


@settings(FAST, max_examples=30)
@given(streams(), st.booleans(), st.booleans())
@example(LATE, False, False)
def test_served_window_vector_equals_the_training_row_sqlite(
    stream: Stream, push: bool, ahead: bool
) -> None:
    check_served_equals_trained(stream, SqliteOnlineStore(":memory:"), push, ahead)


_prefixes = itertools.count()


@settings(FAST, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams(), st.booleans(), st.booleans())
def test_served_window_vector_equals_the_training_row_redis(
    redis_url: str, stream: Stream, push: bool, ahead: bool
) -> None:
    # The fixture empties the test database once; each example writes under its own prefix.
    from driftloop.features._redis import RedisOnlineStore

    online = RedisOnlineStore(redis_url, prefix=f"windows:{next(_prefixes)}:")
    try:
        check_served_equals_trained(stream, online, push, ahead)
    finally:
        online.close()
