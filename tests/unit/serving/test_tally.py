"""Per-arm metrics are counted in bulk: once flushed, the exposition must be exactly what a
prometheus ``observe``/``inc`` per value gives, or dashboards and the loop would compare
arms on wrong numbers."""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._tally import Count, Tally

BOUNDS = (0.05, 0.1, 0.5, 0.9, 1.0)


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], str]]:
    """Every sample but the creation times (the two metrics were made moments apart)."""
    return [
        (s.name, s.labels, repr(s.value))  # repr: a NaN sum equals itself
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    ]


def _pair() -> tuple[CollectorRegistry, CollectorRegistry, Histogram, Histogram]:
    direct, bulk = CollectorRegistry(), CollectorRegistry()
    a = Histogram("score", "s", ["arm"], buckets=BOUNDS, registry=direct)
    b = Histogram("score", "s", ["arm"], buckets=BOUNDS, registry=bulk)
    return direct, bulk, a, b


def test_a_flushed_tally_exposes_what_observing_each_value_would() -> None:
    direct, bulk, a, b = _pair()
    rng = np.random.default_rng(7)
    # bucket edges exactly, values past the last bound, negatives
    values = [*rng.uniform(-0.2, 1.3, 5_000).tolist(), *BOUNDS, 0.0, 2.0]
    tally = Tally(b.labels("challenger"))
    for v in values:
        a.labels("challenger").observe(v)
        tally.observe(v)
    tally.flush()
    tally.flush()  # a second flush adds nothing
    assert _samples(direct) == _samples(bulk)


def test_nothing_is_exposed_before_a_flush_and_everything_after() -> None:
    _, _, _, b = _pair()
    tally = Tally(b.labels("champion"))
    tally.observe(0.3)
    count = [s for s in b.collect()[0].samples if s.name == "score_count"]
    assert count[0].value == 0.0
    tally.flush()
    count = [s for s in b.collect()[0].samples if s.name == "score_count"]
    assert count[0].value == 1.0


def test_a_nan_counts_in_no_bucket_as_with_observe() -> None:
    direct, bulk, a, b = _pair()
    tally = Tally(b.labels("x"))
    a.labels("x").observe(math.nan)
    tally.observe(math.nan)
    tally.flush()
    assert _samples(direct) == _samples(bulk)


def test_counts_add_up_in_bulk() -> None:
    registry = CollectorRegistry()
    counter = Counter("reqs", "r", ["arm"], registry=registry)
    count = Count(counter.labels("a"))
    for _ in range(41):
        count.inc()
    count.inc(9)
    count.flush()
    assert registry.get_sample_value("reqs_total", {"arm": "a"}) == 50.0


def test_the_scrape_flushes_the_server_metrics() -> None:
    metrics = ServingMetrics()
    metrics.tally(metrics.arm_scores.labels("m", "challenger", "2")).observe(0.42)
    metrics.count(metrics.arm_requests.labels("m", "challenger", "2", "model")).inc()
    text = metrics.exposition().decode()
    assert 'driftloop_arm_score_count{arm="challenger",model="m",version="2"} 1.0' in text
    assert (
        'driftloop_arm_requests_total{arm="challenger",link="model",model="m",version="2"} 1.0'
        in text
    )
