"""Print a drift report on a terminal (rich)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Column, Table

from driftloop.monitoring._concept import format_value
from driftloop.monitoring._estimated import ESTIMATED
from driftloop.monitoring._performance import Performance, metric_label
from driftloop.monitoring._report import DriftReport

__all__ = ["print_report"]

_STYLE = {
    "concept-drift": "bold red",
    "estimated-drop": "bold magenta",
    "data-drift": "bold yellow",
    "no-drift": "green",
}


def _cell(x: object) -> str:
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else (f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.3f}")
    return str(x)


def _performance_line(performance: Performance, base: Performance | None, metric: str) -> str:
    """The task's metrics, the model's own first, each beside the reference's."""
    parts = []
    for name in performance.display(metric):
        then = base.get(name) if base is not None else math.nan
        known = f" (reference {format_value(then)})" if math.isfinite(then) else ""
        parts.append(f"{metric_label(name)} {format_value(performance.get(name))}{known}")
    shown = ", ".join(parts) or "no metric defined"
    return f"realized {shown} on {performance.labelled:,} labelled"


def _estimated_line(report: DriftReport) -> str:
    """The estimated metrics (CBPE), each beside the realized one when labels are in, or
    why there are none."""
    if report.estimated is None:
        return f"({report.estimation_note})" if report.estimation_note else ""
    parts = []
    for name in ESTIMATED:
        value = report.estimated.get(name)
        if not math.isfinite(value):
            continue
        known = report.performance.get(name) if report.performance else math.nan
        beside = f" (realized {format_value(known)})" if math.isfinite(known) else ""
        parts.append(f"{metric_label(name)} {format_value(value)}{beside}")
    return f"estimated {', '.join(parts) or 'nothing'}: {report.estimated.note}"


def print_report(report: DriftReport, console: Console | None = None, *, top: int = 20) -> None:
    """The verdict with its reasons, the task's metrics against the reference (the model's
    own metric first), drift of outputs, and the ``top`` features by PSI with every
    statistic (and the share of records missing each, when the records say)."""
    console = console or Console()
    style = _STYLE.get(report.verdict, "bold")
    where = f"{report.model} v{report.version} ({report.route}) " if report.model else ""
    console.print(f"{where}{report.rows:,} rows: verdict [{style}]{report.verdict}[/]")
    for reason in report.reasons:
        console.print(f"  - {reason}")
    if report.performance is not None:
        line = _performance_line(report.performance, report.baseline, report.metric)
        console.print(f"  {line}")
        if report.performance.note:
            console.print(f"  ({report.performance.note})")
    estimated = _estimated_line(report)
    if estimated:
        console.print(f"  {estimated}")
    if report.bands is not None:
        console.print(f"  thresholds: learned bands, {report.bands.describe()}")
    if math.isfinite(report.prediction_drift):
        console.print(f"  score PSI {_cell(report.prediction_drift)}")
    if math.isfinite(report.class_mix_drift):
        console.print(f"  predicted-class mix JS {_cell(report.class_mix_drift)}")
    frame = report.feature_frame()
    columns = [
        c
        for c in ("psi", "ks", "jensen_shannon", "kl_divergence", "wasserstein", "chi_square")
        if c in frame.columns
    ]
    short = {
        "psi": "PSI",
        "ks": "KS",
        "jensen_shannon": "JS",
        "kl_divergence": "KL",
        "wasserstein": "W1/std",
        "chi_square": "chi2",
    }
    if "missing_rate" in frame.columns:
        columns.insert(0, "missing_rate")
        short["missing_rate"] = "missing"
    if "psi" in frame.columns:
        frame = frame.sort_values(["drifted", "psi"], ascending=[False, False])
    shown = frame.head(top)
    # Feature names are shown whole: on a narrow terminal a long one folds onto more lines
    # (rich would otherwise cut it to "custome…", and two features can share a prefix).
    table = Table(
        Column("feature", overflow="fold"),
        "kind",
        "status",
        "drift",
        *(short[c] for c in columns),
        title="Feature drift",
    )
    for name, row in shown.iterrows():
        table.add_row(
            str(name),
            str(row["kind"]),
            str(row["status"]),
            "[red]yes[/]" if row["drifted"] else "no",
            *(_cell(float(row[c])) for c in columns),
        )
    console.print(table)
