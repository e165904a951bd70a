"""The monitor: windows of prediction records per model version and traffic arm, assessed
against the version's reference, stored as a time series, alerting once per incident.

Labels arrive late: a window already stored is assessed again on later runs while its
number of labelled records grows, so its realized performance (and a concept-drift
verdict) appears once the labels are in.

With ``[monitoring] thresholds = "learned"`` and a reference without learned bands, the
first ``reference_windows`` complete windows of each version and route (in what the
monitor reads) are its reference period: once each has ``min_labelled`` labels, the
reference is learned from them (:func:`~driftloop.monitoring.learn_reference`), kept in
the monitoring store and used from then on; until then the fixed thresholds judge, and
the reasons say how far the period is.

A run that assesses nothing says why: each model, version and route that gave no new
assessment leaves a :class:`Skipped` in :attr:`Monitor.skipped` (no records in the
lookback, no reference, a window still filling, nothing new since the last run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

import pandas as pd

from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.monitoring._alerts import AlertManager, sink_from_spec
from driftloop.monitoring._learn import learn_reference, window_spec
from driftloop.monitoring._records import RecordSource, check_records
from driftloop.monitoring._references import Reference, ReferenceSource
from driftloop.monitoring._report import DriftReport, assess
from driftloop.monitoring._store import MonitoringStore
from driftloop.monitoring._windows import Window, WindowSpec, windows

__all__ = ["Monitor", "Skipped"]

logger = logging.getLogger("driftloop.monitoring")


@dataclass(frozen=True)
class Skipped:
    """Why a run assessed nothing new for some records: ``reason`` is one of

    * ``"no-records"``: none of the model in the lookback;
    * ``"no-reference"``: the version has no reference profile;
    * ``"filling"``: the newest window has not ended yet (``partial=True`` assesses it);
    * ``"unchanged"``: windows assessed before, with no new record or label since.

    ``message`` says it with the model, the times and the counts.
    """

    model: str
    reason: Literal["no-records", "no-reference", "filling", "unchanged"]
    message: str


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
        self.skipped: list[Skipped] = []
        """Why the last :meth:`run_once` assessed nothing new for some records."""
        self.alerts = alerts or AlertManager(
            store, [sink_from_spec(spec) for spec in self.config.alerts]
        )
        self.spec = window_spec(self.config)

    def run_once(
        self,
        now: datetime | None = None,
        *,
        models: Iterable[str] | None = None,
        progress: Callable[[str], None] | None = None,
        partial: bool = False,
    ) -> list[DriftReport]:
        """Assess every complete window of the last ``lookback`` for every model; return the
        reports newly stored (new windows, or old ones with more records or labels than
        before). ``partial``: also the time window still filling at ``now``, on its records
        so far (stored, and assessed again as records come). Why some records gave nothing
        new is in :attr:`skipped`."""
        now = now or datetime.now(UTC)
        start = pd.Timestamp(now) - pd.Timedelta(self.config.lookback)
        self.skipped = []
        out: list[DriftReport] = []
        for model in models if models is not None else self.source.models():
            if progress is not None:
                progress(model)
            records = self.source.read(model, start.to_pydatetime(), now)
            if records.empty:
                self.skipped.append(self._no_records(model, start, pd.Timestamp(now)))
                continue
            out.extend(self.assess_records(model, records, now=now, partial=partial))
        return out

    def assess_records(
        self,
        model: str,
        records: pd.DataFrame,
        *,
        now: datetime | None = None,
        partial: bool = False,
    ) -> list[DriftReport]:
        """Assess the complete windows of ``records`` of one model, per version and route
        (and with ``partial`` the time window still filling at ``now``)."""
        if records.empty:
            return []
        records = check_records(records).sort_values("ts", kind="stable")
        cutoff = _utc(now) if now is not None and self.spec.by == "time" else None
        out: list[DriftReport] = []
        for key, group in records.groupby(["version", "route"], sort=True):
            raw_version, route = cast(tuple[Any, Any], key)
            version = _version_number(model, raw_version)
            where = f"{model} v{version} ({route})"
            reference = self.references.reference(model, version)
            if reference is None:
                logger.warning("no reference profile for %s v%s: not monitored", model, version)
                message = f"{where}: no reference profile for this version, so not monitored"
                self.skipped.append(Skipped(model, "no-reference", message))
                continue
            reference, note = self._learned(model, version, str(route), reference, group, cutoff)
            unchanged = 0
            last_end: pd.Timestamp | None = None
            for window in windows(group, self.spec):
                last_end = window.end
                partial_note: tuple[str, ...] = ()
                if cutoff is not None and window.end > cutoff:
                    if not partial:
                        message = _filling(where, window, self.spec, cutoff)
                        self.skipped.append(Skipped(model, "filling", message))
                        continue
                    partial_note = (f"partial window: records up to {cutoff:%Y-%m-%d %H:%M} UTC",)
                report = assess(reference, window.records, self.config)
                reasons = report.reasons
                if note:
                    reasons = (*(r for r in reasons if not r.startswith("thresholds: ")), note)
                report = replace(
                    report,
                    reasons=(*reasons, *partial_note),
                    model=model,
                    version=version,
                    route=str(route),
                    start=window.start,
                    end=window.end,
                )
                labelled = report.performance.labelled if report.performance else 0
                if self.store.assessed_counts(report) == (report.rows, labelled):
                    unchanged += 1
                    continue  # assessed before, nothing new
                self.store.save(report, tenant=_tenant_of(window.records))
                self.alerts.observe(report)
                out.append(report)
            if self.spec.by == "count":
                self._count_leftover(model, where, group, last_end)
            if unchanged:
                message = (
                    f"{where}: {unchanged} window(s) assessed before, "
                    "no new records or labels since"
                )
                self.skipped.append(Skipped(model, "unchanged", message))
        return out

    def _learned(
        self,
        model: str,
        version: int,
        route: str,
        reference: Reference,
        group: pd.DataFrame,
        cutoff: pd.Timestamp | None,
    ) -> tuple[Reference, str]:
        """The reference with learned bands: the version's own, the one learned before, or
        one learned now from the first complete windows; else ``reference`` and why."""
        if self.config.thresholds != "learned" or reference.bands is not None:
            return reference, ""
        stored = self.store.learned_reference(model, version, route)
        if stored is not None:
            return stored, ""
        wanted, least = self.config.reference_windows, self.config.min_labelled
        first: list[Window] = []
        for window in windows(group, self.spec):
            if len(first) == wanted or (cutoff is not None and window.end > cutoff):
                break
            first.append(window)
        ready = sum(int(w.records["label"].notna().sum()) >= least for w in first)
        if ready < wanted:
            return reference, (
                "thresholds: fixed until the reference period is learned: "
                f"{ready} of its monitoring.reference_windows {wanted} first windows are "
                f"complete with monitoring.min_labelled {least} labels"
            )
        period = pd.concat([w.records for w in first])
        period = period[~period.index.duplicated()]
        try:
            learned = learn_reference(period, reference, self.config, spec=self.spec)
        except InvalidParameterError as exc:
            return (
                reference,
                f"thresholds: fixed, no bands learned from the reference period: {exc}",
            )
        key = (model, version, route)
        self.store.save_reference(*key, learned, (first[0].start, first[-1].end))
        logger.info(
            "learned the reference of %s v%s (%s) from %d windows", model, version, route, wanted
        )
        return learned, ""

    def _no_records(self, model: str, start: pd.Timestamp, now: pd.Timestamp) -> Skipped:
        """No records in the lookback: say so, and whether some are later than ``now``
        (event times in the future, or a ``now`` set in the past)."""
        message = (
            f"{model}: no records from {start:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC "
            f"(monitoring.lookback {self.config.lookback} back from now)"
        )
        later = self.source.read(model, now.to_pydatetime(), (now + _AHEAD).to_pydatetime())
        if not later.empty:
            ts = pd.to_datetime(later["ts"], utc=True)
            message += (
                f"; {len(later):,} record(s) are later, "
                f"from {ts.min():%Y-%m-%d %H:%M} to {ts.max():%Y-%m-%d %H:%M} UTC"
            )
        return Skipped(model, "no-records", message)

    def _count_leftover(
        self, model: str, where: str, group: pd.DataFrame, last_end: pd.Timestamp | None
    ) -> None:
        """Count windows: records after the last full window wait for the window to fill."""
        ts = pd.to_datetime(group["ts"], utc=True)
        waiting = int((ts > last_end).sum()) if last_end is not None else len(group)
        if waiting:
            message = (
                f"{where}: {waiting:,} record(s) after the last full window, "
                f"which holds monitoring.window_size {self.spec.size} records"
            )
            self.skipped.append(Skipped(model, "filling", message))


_AHEAD = pd.Timedelta(days=3_660)  # how far past now to look for records when none are before


def _utc(at: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(at)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _filling(where: str, window: Window, spec: WindowSpec, now: pd.Timestamp) -> str:
    newest = pd.to_datetime(window.records["ts"], utc=True).max()
    return (
        f"{where}: the newest records are from {newest:%Y-%m-%d %H:%M} UTC, in the "
        f"{spec.size} window {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} "
        f"UTC, which ends after now ({now:%Y-%m-%d %H:%M}); {len(window.records):,} "
        "record(s) in it so far"
    )


def _version_number(model: str, version: Any) -> int:
    """Versions are numbers (the audit log keeps them as text)."""
    try:
        return int(str(version))
    except ValueError:
        raise SchemaMismatchError(
            f"Records of model '{model}' have version {version!r}; expected a version number."
        ) from None


def _tenant_of(records: pd.DataFrame) -> str:
    """The tenant of a window's audit records (``default`` for frames without one)."""
    if "tenant" not in records.columns or records.empty:
        return "default"
    return str(records["tenant"].iloc[0])
