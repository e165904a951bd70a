"""Alerts on drift: sinks (log, file, webhook) and one alert per open incident.

An incident opens with the first window whose verdict is data drift, an estimated
performance drop or concept drift for a model version and route, stays open (no new alert)
while later windows keep the verdict, and closes with the first window judged
``"no-drift"``; the next drift opens a new incident.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from driftloop.core.errors import BackendUnavailableError, InvalidParameterError
from driftloop.monitoring._report import DriftReport
from driftloop.monitoring._store import MonitoringStore

__all__ = [
    "Alert",
    "AlertManager",
    "AlertSink",
    "FileAlertSink",
    "LogAlertSink",
    "WebhookAlertSink",
    "sink_from_spec",
]

logger = logging.getLogger("driftloop.monitoring")
ALERTING = ("data-drift", "estimated-drop", "concept-drift")


@dataclass(frozen=True)
class Alert:
    """What a sink receives."""

    incident_id: int
    model: str
    version: int
    route: str
    kind: str
    window_start: str
    window_end: str
    message: str
    drifted_features: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@runtime_checkable
class AlertSink(Protocol):
    """Delivers an alert somewhere; raises a ``DriftloopError`` when it cannot."""

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``."""
        ...


class LogAlertSink:
    """Logs alerts at warning level on the ``driftloop.monitoring`` logger (``drift
    alert: ...``; the loop controller's promotions and rollbacks: ``loop alert: ...``)."""

    def send(self, alert: Alert) -> None:
        logger.warning(
            "%s alert: %s v%s (%s) %s: %s",
            "drift" if alert.kind in ALERTING else alert.route,
            alert.model,
            alert.version,
            alert.route,
            alert.kind,
            alert.message,
        )


class FileAlertSink:
    """Appends alerts to a file, one JSON object per line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert.to_dict()) + "\n")


class WebhookAlertSink:
    """POSTs alerts as JSON; retries connection errors, 429 and 5xx with exponential
    backoff (``base_delay * 2**attempt``, capped at ``max_delay``) plus random jitter of up
    to the same amount; gives up after ``attempts`` tries."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise InvalidParameterError(f"Webhook 'attempts' must be >= 1; got {attempts}.")
        self.url = url
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._sleep = sleep
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * 2**attempt)
        return float(backoff + self._rng.uniform(0, backoff))

    def send(self, alert: Alert) -> None:
        problem = ""
        for attempt in range(self.attempts):
            try:
                response = self._client.post(self.url, json=alert.to_dict())
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return
                if response.status_code != 429 and response.status_code < 500:
                    raise BackendUnavailableError(
                        f"Webhook {self.url} refused the alert: HTTP {response.status_code}."
                    )
                problem = f"HTTP {response.status_code}"
            if attempt + 1 < self.attempts:
                self._sleep(self.delay(attempt))
        raise BackendUnavailableError(
            f"Webhook {self.url} failed {self.attempts} times; last: {problem}."
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def sink_from_spec(spec: str) -> AlertSink:
    """``"log"``, ``"file:PATH"`` or an ``http(s)://`` webhook URL."""
    if spec == "log":
        return LogAlertSink()
    if spec.startswith("file:"):
        return FileAlertSink(spec.removeprefix("file:"))
    if spec.startswith(("http://", "https://")):
        return WebhookAlertSink(spec)
    raise InvalidParameterError(
        f"Alert sink {spec!r} is not known. Use 'log', 'file:PATH' or an http(s):// URL."
    )


class AlertManager:
    """Turns window verdicts into incidents and sends one alert per new incident."""

    def __init__(self, store: MonitoringStore, sinks: Sequence[AlertSink]) -> None:
        self.store = store
        self.sinks = list(sinks)

    def observe(self, report: DriftReport) -> Alert | None:
        """Update incidents from one window; return the alert sent, if a new incident opened."""
        at = report.end.to_pydatetime() if report.end is not None else None
        if at is None:
            return None
        key = (report.model, report.version, report.route)
        if report.verdict == "no-drift":
            self.store.close_all(*key, at)
            return None
        if report.verdict not in ALERTING:
            return None
        existing = self.store.open_incident(*key, report.verdict)
        if existing is not None:
            self.store.touch(existing.id, at)
            return None
        incident_id = self.store.open(*key, report.verdict, at)
        alert = Alert(
            incident_id=incident_id,
            model=report.model,
            version=report.version,
            route=report.route,
            kind=report.verdict,
            window_start="" if report.start is None else report.start.isoformat(),
            window_end=report.end.isoformat() if report.end is not None else "",
            message="; ".join(report.reasons),
            drifted_features=list(report.drifted_features),
        )
        for sink in self.sinks:
            try:
                sink.send(alert)
            except BackendUnavailableError as exc:
                logger.error("alert sink %s failed: %s", type(sink).__name__, exc)
        return alert
