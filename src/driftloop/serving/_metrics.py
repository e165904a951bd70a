"""Prometheus metrics, correct across worker processes.

With several workers, ``driftloop serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start (prometheus-client reads it at import) and passes the same folder here;
``/metrics`` then sums every worker's files. The cache hit ratio is computed at scrape
time from the summed counters, so it is right across workers too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from driftloop.serving._tally import Count, Tally

__all__ = ["ServingMetrics", "only_models"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class ServingMetrics:
    """The server's counters and histograms, and their exposition."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self._pending: list[Tally | Count] = []  # counted here, added in bulk by flush()
        r = self.registry
        self.requests = Counter(
            "driftloop_requests", "HTTP requests by endpoint and status.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "driftloop_request_seconds", "Time to answer a prediction request.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "driftloop_predictions", "Predictions made, by model and version.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "driftloop_batch_rows", "Rows per model call (dynamic batching).",
            ["model"], buckets=_ROW_BUCKETS, registry=r,
        )  # fmt: skip
        self.cache_hits = Counter(
            "driftloop_cache_hits", "Prediction cache hits.", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "driftloop_cache_misses", "Prediction cache misses.", ["model"], registry=r
        )
        self.missing = Counter(
            "driftloop_missing_features",
            "Feature values the server had no value for (absent, unknown entity, null) or "
            "a category never seen in training (reason=unseen), by model and feature.",
            ["model", "feature", "reason"], registry=r,
        )  # fmt: skip
        self.arm_requests = Counter(
            "driftloop_arm_requests",
            "Requests answered, by model, traffic arm, version that answered and link of "
            "the fallback chain (model, champion, rules, default).",
            ["model", "arm", "version", "link"], registry=r,
        )  # fmt: skip
        self.arm_errors = Counter(
            "driftloop_arm_errors", "Calls to a version that raised (the next link answered).",
            ["model", "arm", "version"], registry=r,
        )  # fmt: skip
        self.arm_latency = Histogram(
            "driftloop_arm_seconds", "Time to answer, by model, arm and answering version.",
            ["model", "arm", "version"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.arm_scores = Histogram(
            "driftloop_arm_score",
            "Scores answered (positive or top-class probability, or regression value), by "
            "model, arm and answering version.",
            ["model", "arm", "version"], buckets=_SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "driftloop_breaker_state",
            "Circuit breaker of each served alias or version: 0 closed, 1 half-open, 2 open.",
            ["model", "target"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.feature_breaker_state = Gauge(
            "driftloop_feature_store_breaker_state",
            "Circuit breaker of the online feature store: 0 closed, 1 half-open, 2 open.",
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.feature_store_empty = Gauge(
            "driftloop_feature_store_empty",
            "1 when the online feature store holds no rows (new, or restarted without "
            "its data): enriched requests get nulls until it is materialized again.",
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.fallbacks = Counter(
            "driftloop_fallbacks",
            "Requests a link of the fallback chain passed on, by model, alias or version, "
            "and reason (error, breaker-open).",
            ["model", "target", "reason"], registry=r,
        )  # fmt: skip
        self.degraded = Counter(
            "driftloop_degraded",
            "Requests answered degraded, by model and reason (features-unavailable: the "
            "online store did not answer; fallback: no version could).",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self.shadow = Counter(
            "driftloop_shadow",
            "Shadow copies by model, shadow version and outcome (scored, failed, dropped: "
            "the queue was full).",
            ["model", "version", "outcome"], registry=r,
        )  # fmt: skip
        self.audit_spooled = Gauge(
            "driftloop_audit_spooled",
            "Audit rows waiting on local disk for the audit store to come back.",
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.traffic_revision = Gauge(
            "driftloop_traffic_revision", "The traffic policy revision each worker routes by.",
            ["model"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.model_loaded = Gauge(
            "driftloop_model_info", "1 for the version each model serves now.",
            ["model", "version", "runtime"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip

    def tally(self, child: Any) -> Tally:
        """A histogram child observed per request, at a bisect's cost (see ``_tally``)."""
        tally = Tally(child)
        self._pending.append(tally)
        return tally

    def count(self, child: Any) -> Count:
        """A counter child incremented per request, added in bulk."""
        count = Count(child)
        self._pending.append(count)
        return count

    def flush(self) -> None:
        """Add what tallies and counts hold to their metrics (before a scrape, and every
        second with several workers)."""
        for pending in self._pending:
            pending.flush()

    def exposition(self) -> bytes:
        self.flush()
        if self.multiprocess_dir is None:
            source: CollectorRegistry = self.registry
        else:
            source = CollectorRegistry()
            MultiProcessCollector(source, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        scrape = CollectorRegistry()
        scrape.register(_Forward(source))
        scrape.register(_HitRatio(source))
        return generate_latest(scrape)


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class _HitRatio(Collector):
    """``driftloop_cache_hit_ratio{model}`` = hits / (hits + misses), summed over workers."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, list[float]] = {}
        for metric in self.source.collect():
            if metric.name not in ("driftloop_cache_hits", "driftloop_cache_misses"):
                continue
            slot = 0 if metric.name == "driftloop_cache_hits" else 1
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    totals.setdefault(sample.labels["model"], [0.0, 0.0])[slot] += sample.value
        family = GaugeMetricFamily(
            "driftloop_cache_hit_ratio", "Prediction cache hits / lookups.", labels=["model"]
        )
        for model, (hits, misses) in sorted(totals.items()):
            family.add_metric([model], hits / (hits + misses) if hits + misses else 0.0)
        yield family


_MODEL_LABEL = re.compile(rb'[{,]model="([^"]*)"')


def only_models(exposition: bytes, models: Collection[str]) -> bytes:
    r"""The samples of ``exposition`` labelled with one of ``models`` (with their ``# HELP``
    and ``# TYPE`` lines); samples of no model (per endpoint, per process) are left out,
    since they sum over every tenant's requests.

    >>> text = b'# TYPE p counter\np_total{model="a",version="1"} 2.0\np_total{model="b"} 1.0\n'
    >>> only_models(text + b'r_total{endpoint="predict"} 3.0\n', {"a"}).decode().splitlines()
    ['# TYPE p counter', 'p_total{model="a",version="1"} 2.0']
    """
    kept = []
    for line in exposition.splitlines():
        if line.startswith(b"#"):
            kept.append(line)
            continue
        found = _MODEL_LABEL.search(line.split(b"}", 1)[0] + b"}")
        if found is not None and found.group(1).decode() in models:
            kept.append(line)
    return b"\n".join(kept) + b"\n"
