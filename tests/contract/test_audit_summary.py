"""Aggregates of the prediction log for the dashboard, on every backend: counted by the
database, per model, version and route, over the day before the newest prediction unless
told otherwise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from driftloop.audit import (
    LATENCY_EDGES_MS,
    AuditLog,
    AuditRecord,
    Label,
    SqliteAuditLog,
    entity_predictions,
    newest_predictions,
    route_summary,
)
from driftloop.core.errors import InvalidParameterError

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def record(i: int, version: str, route: str, latency_ms: float, hours_ago: float) -> AuditRecord:
    return AuditRecord(
        prediction_id=f"p{i}",
        ts=T0 - timedelta(hours=hours_ago),
        model="churn",
        version=version,
        route=route,
        score=0.25 if version == "1" else 0.75,
        decision="stay",
        latency_ms=latency_ms,
        features={"plan": "pro", "tenure": None, "active": True},
    )


@pytest.fixture
def log(make_log: Callable[[], AuditLog]) -> AuditLog:
    """On every backend (the contract tests' shared factory)."""
    audit = make_log()
    audit.write(
        [record(i, "1", "v1", 0.5 + i, hours_ago=i) for i in range(6)]  # 0.5 .. 5.5 ms
        + [record(10, "2", "v1", 150.0, hours_ago=1.5), record(11, "1", "v1:rules", 3.0, 2)]
        + [record(20, "1", "v1", 1.0, hours_ago=30)]  # older than the newest's day
    )
    audit.add_labels([Label("p1", 1.0), Label("p2", 0.0), Label("p10", 1.0)])
    return audit


def test_each_arm_is_counted_with_labels_scores_and_latency(log: AuditLog) -> None:
    arms = {(a.version, a.route): a for a in route_summary(log)}
    assert set(arms) == {("1", "v1"), ("1", "v1:rules"), ("2", "v1")}
    one = arms[("1", "v1")]
    assert (one.requests, one.labelled) == (6, 2)  # p20 is more than a day older
    assert one.mean_latency_ms == pytest.approx(3.0)
    assert one.max_latency_ms == pytest.approx(5.5)
    assert one.mean_score == pytest.approx(0.25)
    assert sum(one.latency_bins) == one.requests
    assert len(one.latency_bins) == len(LATENCY_EDGES_MS) + 1
    assert one.latency_bins[:4] == (1, 1, 3, 1)  # <1, <2, <5, <10 ms
    assert arms[("2", "v1")].latency_bins[LATENCY_EDGES_MS.index(200.0)] == 1
    assert arms[("1", "v1:rules")].fallback
    assert arms[("1", "v1:rules")].link == "rules"
    assert one.link == "model"
    assert not one.fallback


def test_p50_and_p99_come_from_the_latency_bins_within_a_bins_width(log: AuditLog) -> None:
    one = {(a.version, a.route): a for a in route_summary(log)}[("1", "v1")]
    latencies = sorted(0.5 + i for i in range(6))  # 0.5 .. 5.5 ms, as written
    p50, p99 = one.latency_quantile(0.5), one.latency_quantile(0.99)
    assert p50 is not None
    assert p99 is not None
    assert 2.0 <= p50 <= 5.0  # the median (3.0) is in the 2-5 ms bin, and so is the estimate
    assert 5.0 <= p99 <= max(latencies)  # the slowest bin (5-10 ms), never past the slowest
    assert one.latency_quantile(1.0) == pytest.approx(5.5)
    with pytest.raises(ValueError, match=r"q=1\.5"):
        one.latency_quantile(1.5)


def test_a_summary_bounded_by_rows_counts_the_spans_newest(log: AuditLog) -> None:
    """Where there are no hourly rollups (PostgreSQL), ``max_rows`` bounds the rows read:
    the newest of the span are counted, and ``first`` says where counting started."""
    bounded = route_summary(log, max_rows=3)
    if isinstance(log, SqliteAuditLog):  # the rollups bound it already: all are counted
        assert sum(a.requests for a in bounded) == 8
        return
    assert sum(a.requests for a in bounded) == 3
    # the three newest: p0 (now), p1 (1 h ago), p10 (1.5 h ago)
    assert min(a.first for a in bounded) == T0 - timedelta(hours=1.5)
    assert {(a.version, a.requests) for a in bounded} == {("1", 2), ("2", 1)}
    with pytest.raises(InvalidParameterError, match="max_rows"):
        route_summary(log, max_rows=0)


def test_a_given_span_counts_only_its_predictions(log: AuditLog) -> None:
    arms = route_summary(log, T0 - timedelta(hours=48), T0 - timedelta(hours=3))
    # p4, p5 and p20; p3, made exactly at the end, is not in [start, end)
    assert [(a.version, a.route, a.requests) for a in arms] == [("1", "v1", 3)]


def test_newest_predictions_come_first_with_their_labels(log: AuditLog) -> None:
    newest = newest_predictions(log, "churn", limit=3)
    assert newest["prediction_id"].tolist() == ["p0", "p1", "p10"]
    assert newest["label"].tolist()[1:] == [1.0, 1.0]
    assert newest_predictions(log, "other").empty


def test_any_span_sums_exactly_what_a_row_by_row_count_finds(log: AuditLog) -> None:
    """Whole hours may come from rollups (SQLite), partial ones from the rows: labels
    that come later, a duplicate write and spans cut mid-hour all agree with the rows."""
    log.write([record(3, "1", "v1", 99.0, hours_ago=3)])  # a duplicate id: ignored
    log.add_labels([Label("p20", 1.0), Label("p4", 0.0), Label("p1", 0.0)])  # p1 relabelled
    rows = log.window(T0 - timedelta(days=3), T0 + timedelta(hours=1))
    for start_h, end_h in [(40.25, 0.0), (5.5, 0.75), (30.0, 1.0), (2.1, 1.9), (48.0, -1.0)]:
        start, end = T0 - timedelta(hours=start_h), T0 - timedelta(hours=end_h)
        inside = rows[(rows["ts"] >= start) & (rows["ts"] < end)]
        found = {(a.version, a.route): a for a in route_summary(log, start, end)}
        expected = inside.groupby(["version", "route"])
        assert set(found) == set(expected.groups), (start_h, end_h)
        for (version, route), group in expected:
            arm = found[(version, route)]
            assert arm.requests == len(group)
            assert arm.labelled == int(group["label"].notna().sum())
            assert arm.mean_score == pytest.approx(float(group["score"].mean()))
            assert arm.first == group["ts"].min().to_pydatetime()
            if arm.mean_latency_ms is not None:  # the SQL logs keep latency
                assert arm.mean_latency_ms == pytest.approx(float(group["latency_ms"].mean()))
                assert arm.max_latency_ms == pytest.approx(float(group["latency_ms"].max()))
                assert sum(arm.latency_bins) == len(group)
                assert sum(arm.score_bins) == len(group)


def test_an_entitys_predictions_come_newest_first_of_the_models_asked(log: AuditLog) -> None:
    log.write(
        [
            AuditRecord(
                prediction_id=f"e{i}",
                ts=T0 - timedelta(hours=i),
                model=model,
                version="1",
                route="v1",
                score=0.5,
                decision="stay",
                latency_ms=1.0,
                features={},
                entity_keys={"customer": "42"},
            )
            for i, model in enumerate(["churn", "upsell", "churn"])
        ]
    )
    log.add_labels([Label("e2", 1.0)])
    found = entity_predictions(log, "customer", "42")
    assert found["prediction_id"].tolist() == ["e0", "e1", "e2"]
    assert found["label"].tolist()[2] == 1.0
    churn = entity_predictions(log, "customer", "42", models=["churn"], limit=1)
    assert churn["prediction_id"].tolist() == ["e0"]
    assert entity_predictions(log, "customer", "42", models=[]).empty
    assert entity_predictions(log, "customer", "7").empty
