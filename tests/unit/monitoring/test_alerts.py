from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from driftloop.core import BackendUnavailableError, InvalidParameterError
from driftloop.monitoring import (
    Alert,
    AlertManager,
    LogAlertSink,
    MonitoringStore,
    WebhookAlertSink,
    drift_report,
    sink_from_spec,
)


class _Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def _report(verdict: str, day: int):
    rng = np.random.default_rng(day)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 500)})
    base = drift_report(frame, frame, score=None, label=None)
    start = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=day)
    return replace(
        base,
        verdict=verdict,
        model="m",
        version=1,
        route="champion",
        start=start,
        end=start + pd.Timedelta(days=1),
    )


def test_an_incident_alerts_once_and_a_new_one_after_it_closes(tmp_path: Path) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'a.db'}")
    sink = _Collect()
    manager = AlertManager(store, [sink, LogAlertSink()])
    verdicts = [
        "no-drift",
        "data-drift",
        "data-drift",
        "insufficient-data",
        "data-drift",
        "concept-drift",
        "no-drift",
        "data-drift",
    ]
    for day, verdict in enumerate(verdicts):
        manager.observe(_report(verdict, day))
    assert [(a.kind, a.window_start[:10]) for a in sink.alerts] == [
        ("data-drift", "2025-01-02"),
        ("concept-drift", "2025-01-06"),
        ("data-drift", "2025-01-08"),
    ]
    store.dispose()


def test_a_failing_sink_does_not_stop_the_others(tmp_path: Path) -> None:
    class Broken:
        def send(self, alert: Alert) -> None:
            raise BackendUnavailableError("down")

    store = MonitoringStore(f"sqlite:///{tmp_path / 'a.db'}")
    sink = _Collect()
    AlertManager(store, [Broken(), sink]).observe(_report("data-drift", 0))
    assert len(sink.alerts) == 1
    store.dispose()


def test_webhook_backoff_grows_exponentially_with_bounded_jitter() -> None:
    sink = WebhookAlertSink(
        "http://127.0.0.1:9/x", base_delay=0.5, max_delay=4.0, rng=random.Random(0)
    )
    delays = [sink.delay(i) for i in range(6)]
    for i, d in enumerate(delays):
        backoff = min(4.0, 0.5 * 2**i)
        assert backoff <= d <= 2 * backoff
    sink.close()


def test_webhook_gives_up_on_a_client_error_without_retrying() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    sink = WebhookAlertSink(
        "http://hooks.invalid/x", transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with pytest.raises(BackendUnavailableError, match="HTTP 404"):
        sink.send(_alert())
    assert len(calls) == 1


def _alert() -> Alert:
    return Alert(1, "m", 1, "champion", "data-drift", "a", "b", "moved", ["x"])


@pytest.mark.parametrize("spec", ["email:me", "", "ftp://x"])
def test_unknown_sink_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidParameterError, match="Alert sink"):
        sink_from_spec(spec)
