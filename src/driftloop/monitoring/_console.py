"""Print a drift report on a terminal (rich)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from driftloop.monitoring._report import DriftReport

__all__ = ["print_report"]

_STYLE = {"concept-drift": "bold red", "data-drift": "bold yellow", "no-drift": "green"}


def _cell(x: object) -> str:
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else (f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.3f}")
    return str(x)


def print_report(report: DriftReport, console: Console | None = None, *, top: int = 20) -> None:
    """The verdict with its reasons, performance against the reference, and the ``top``
    features by PSI with every statistic."""
    console = console or Console()
    style = _STYLE.get(report.verdict, "bold")
    where = f"{report.model} v{report.version} ({report.route}) " if report.model else ""
    console.print(f"{where}{report.rows:,} rows: verdict [{style}]{report.verdict}[/]")
    for reason in report.reasons:
        console.print(f"  - {reason}")
    if report.performance is not None:
        base = report.baseline
        console.print(
            f"  realized ROC AUC {_cell(report.performance.roc_auc)}"
            + (f" (reference {_cell(base.roc_auc)})" if base else "")
            + f", precision {_cell(report.performance.precision)}, recall "
            f"{_cell(report.performance.recall)}, ECE {_cell(report.performance.ece)} on "
            f"{report.performance.labelled:,} labelled"
        )
    if math.isfinite(report.prediction_drift):
        console.print(f"  score PSI {_cell(report.prediction_drift)}")
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
    table = Table(
        "feature", "kind", "status", "drift", *(short[c] for c in columns), title="Feature drift"
    )
    if "psi" in frame.columns:
        frame = frame.sort_values(["drifted", "psi"], ascending=[False, False])
    for name, row in frame.head(top).iterrows():
        table.add_row(
            str(name),
            str(row["kind"]),
            str(row["status"]),
            "[red]yes[/]" if row["drifted"] else "no",
            *(_cell(float(row[c])) for c in columns),
        )
    console.print(table)
