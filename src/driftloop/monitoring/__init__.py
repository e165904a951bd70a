"""Monitoring: drift of inputs and scores, realized performance on delayed labels, verdicts
that tell data drift from concept drift, a time series of results, reports and alerts."""

from __future__ import annotations

from driftloop.monitoring._alerts import (
    Alert,
    AlertManager,
    AlertSink,
    FileAlertSink,
    LogAlertSink,
    WebhookAlertSink,
    sink_from_spec,
)
from driftloop.monitoring._arm_limits import ArmLimits
from driftloop.monitoring._arms import ArmComparison, ArmStats, ScoreShift, compare_arms
from driftloop.monitoring._bands import Bands
from driftloop.monitoring._concept import MetricCheck
from driftloop.monitoring._console import print_report
from driftloop.monitoring._estimated import estimated_performance
from driftloop.monitoring._frames import drift_report
from driftloop.monitoring._html import render_html, write_html_report
from driftloop.monitoring._learn import learn_bands, learn_reference, window_spec
from driftloop.monitoring._lists import ListDrift, ListStats, list_drift, served_lists
from driftloop.monitoring._monitor import Monitor, Skipped
from driftloop.monitoring._performance import (
    Performance,
    realized_performance,
    window_performance,
)
from driftloop.monitoring._project import project_monitor
from driftloop.monitoring._records import (
    AuditRecordSource,
    FrameRecordSource,
    RecordSource,
    WindowReader,
    check_records,
    record_columns,
)
from driftloop.monitoring._references import (
    Reference,
    ReferenceSource,
    RegistryReferences,
    StaticReferences,
    baseline_from_metrics,
    served_profile,
)
from driftloop.monitoring._report import (
    DriftReport,
    Verdict,
    assess,
    statistics_for,
)
from driftloop.monitoring._rollout import ArmVerdict, verdict
from driftloop.monitoring._store import Incident, MonitoringStore
from driftloop.monitoring._windows import Window, WindowSpec, windows

__all__ = [
    "Alert",
    "AlertManager",
    "AlertSink",
    "ArmComparison",
    "ArmLimits",
    "ArmStats",
    "ArmVerdict",
    "AuditRecordSource",
    "Bands",
    "DriftReport",
    "FileAlertSink",
    "FrameRecordSource",
    "Incident",
    "ListDrift",
    "ListStats",
    "LogAlertSink",
    "MetricCheck",
    "Monitor",
    "MonitoringStore",
    "Performance",
    "RecordSource",
    "Reference",
    "ReferenceSource",
    "RegistryReferences",
    "ScoreShift",
    "Skipped",
    "StaticReferences",
    "Verdict",
    "WebhookAlertSink",
    "Window",
    "WindowReader",
    "WindowSpec",
    "assess",
    "baseline_from_metrics",
    "check_records",
    "compare_arms",
    "drift_report",
    "estimated_performance",
    "learn_bands",
    "learn_reference",
    "list_drift",
    "print_report",
    "project_monitor",
    "realized_performance",
    "record_columns",
    "render_html",
    "served_lists",
    "served_profile",
    "sink_from_spec",
    "statistics_for",
    "verdict",
    "window_performance",
    "window_spec",
    "windows",
    "write_html_report",
]
