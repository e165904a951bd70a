"""The monitor: windows of prediction records per model version and traffic arm, assessed
against the version's reference, stored as a time series, alerting once per incident.

Labels arrive late: a window already stored is assessed again on later runs while its
number of labelled records grows, so its realized performance (and a concept-drift
verdict) appears once the labels are in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

import pandas as pd

from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import SchemaMismatchError
from driftloop.monitoring._alerts import AlertManager, sink_from_spec
from driftloop.monitoring._records import RecordSource, check_records
from driftloop.monitoring._references import ReferenceSource
from driftloop.monitoring._report import DriftReport, assess
from driftloop.monitoring._store import MonitoringStore
from driftloop.monitoring._windows import WindowSpec, windows

__all__ = ["Monitor"]

logger = logging.getLogger("driftloop.monitoring")


class Monitor:
    """Assess windows of records from ``source`` against ``references``; store and alert."""

    def __init__(
        self,
        source: RecordSource,
        references: ReferenceSource,
        store: MonitoringStore,
        config: MonitoringConfig | None = None,
        *,
        alerts: AlertManager | None = None,
    ) -> None:
        self.source = source
        self.references = references
        self.store = store
        self.config = config or MonitoringConfig()
        self.alerts = alerts or AlertManager(
            store, [sink_from_spec(spec) for spec in self.config.alerts]
        )
        step = self.config.window_step
        if self.config.window_by == "count":
            self.spec = WindowSpec(
                "count", int(self.config.window_size), int(step) if step is not None else None
            )
        else:
            self.spec = WindowSpec("time", self.config.window_size, step)

    def run_once(
        self,
        now: datetime | None = None,
        *,
        models: Iterable[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> list[DriftReport]:
        """Assess every complete window of the last ``lookback`` for every model; return the
        reports newly stored (new windows, or old ones with more labels than before)."""
        now = now or datetime.now(UTC)
        start = pd.Timestamp(now) - pd.Timedelta(self.config.lookback)
        out: list[DriftReport] = []
        for model in models if models is not None else self.source.models():
            if progress is not None:
                progress(model)
            records = self.source.read(model, start.to_pydatetime(), now)
            out.extend(self.assess_records(model, records, now=now))
        return out

    def assess_records(
        self, model: str, records: pd.DataFrame, *, now: datetime | None = None
    ) -> list[DriftReport]:
        """Assess the complete windows of ``records`` of one model, per version and route."""
        if records.empty:
            return []
        records = check_records(records).sort_values("ts", kind="stable")
        cutoff = pd.Timestamp(now) if now is not None else None
        if cutoff is not None and cutoff.tzinfo is None:
            cutoff = cutoff.tz_localize("UTC")
        out: list[DriftReport] = []
        for key, group in records.groupby(["version", "route"], sort=True):
            raw_version, route = cast(tuple[Any, Any], key)
            version = _version_number(model, raw_version)
            reference = self.references.reference(model, version)
            if reference is None:
                logger.warning("no reference profile for %s v%s: not monitored", model, version)
                continue
            for window in windows(group, self.spec):
                if self.spec.by == "time" and cutoff is not None and window.end > cutoff:
                    continue  # still filling
                report = assess(reference, window.records, self.config)
                report = _placed(report, model, version, str(route), window.start, window.end)
                labelled = report.performance.labelled if report.performance else 0
                if self.store.labelled_count(report) == labelled:
                    continue  # assessed before, nothing new
                self.store.save(report)
                self.alerts.observe(report)
                out.append(report)
        return out


def _version_number(model: str, version: Any) -> int:
    """Versions are numbers (the audit log keeps them as text)."""
    try:
        return int(str(version))
    except ValueError:
        raise SchemaMismatchError(
            f"Records of model '{model}' have version {version!r}; expected a version number."
        ) from None


def _placed(
    report: DriftReport,
    model: str,
    version: int,
    route: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> DriftReport:
    from dataclasses import replace

    return replace(report, model=model, version=version, route=route, start=start, end=end)
