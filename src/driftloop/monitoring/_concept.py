"""Concept drift: a significant fall of the model's own metric against its reference.

Which metric is judged, with which bar (:class:`~driftloop.core.config.MonitoringConfig`):

==============  =============================================  =========================
task            metric judged                                   drift when
==============  =============================================  =========================
binary          the model's metric (``roc_auc`` by default)      ROC AUC drops more than
                and recall at ``decision_threshold``             ``max_auc_drop``, recall
                                                                 more than
                                                                 ``max_recall_drop``
multiclass      the model's metric (``log_loss`` by default);    log loss rises more than
                ``accuracy`` when the records carry no class     ``max_error_increase``
                probabilities                                    (relative); accuracy
                                                                 drops more than
                                                                 ``max_accuracy_drop``
regression      the model's metric (``rmse`` by default)         RMSE / MAE rise more than
                                                                 ``max_error_increase``
==============  =============================================  =========================

Error metrics (``rmse``, ``mae``, ``log_loss``, ``brier``) are judged by their relative
increase, the others by their absolute drop. A fall counts only when it is also more than
``drop_z`` standard errors of the difference: the window's own (from its per-row values,
as :func:`~driftloop.stats.evaluate` gives ``<metric>_se``; Hanley-McNeil for ROC AUC;
binomial for recall) and the reference's stored ``<metric>_se``. A version registered
without ``_se`` gets Hanley-McNeil for ROC AUC, binomial for recall, and otherwise the
window's per-row spread over the reference's rows. A model metric with no standard error
(``pr_auc``, ``macro_f1``, ``r2``, ``ece``) is judged on its task's default metric instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring._performance import Performance, metric_label
from driftloop.stats import METRICS, TASKS, auc_standard_error

__all__ = [
    "ERROR_METRICS",
    "MetricCheck",
    "check_performance",
    "format_value",
    "judged_metrics",
    "standard_error",
]

ERROR_METRICS = ("rmse", "mae", "log_loss", "brier")
_ERRORS = ERROR_METRICS
_ABSOLUTE = {"roc_auc": "max_auc_drop", "accuracy": "max_accuracy_drop"}


def format_value(x: float) -> str:
    """A metric's value as reports print it (3 decimals; large values grouped)."""
    if not math.isfinite(x):
        return "-"
    return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.3f}"


@dataclass(frozen=True)
class MetricCheck:
    """One metric of a window against the reference: ``change`` is how much worse it is
    (an absolute drop, or for an error metric the relative increase), ``limit`` the bar
    it must pass, ``standard_error`` that of the difference; ``dropped`` when both the
    bar and ``drop_z`` standard errors are passed. Against a learned band (``basis`` says
    which), ``reference`` is the band's mean, ``change`` the absolute move the bad way,
    ``limit`` the band's half-width and ``standard_error`` its spread: ``dropped`` when
    outside it. ``estimated``: ``now`` is estimated from the scores (CBPE), not realized."""

    metric: str
    now: float
    reference: float
    change: float
    limit: float
    relative: bool
    standard_error: float
    dropped: bool
    basis: str = ""
    estimated: bool = False

    @property
    def label(self) -> str:
        return metric_label(self.metric)

    @property
    def z(self) -> float:
        """How many standard errors worse (negative: better)."""
        if self.basis:
            worse = self.change
        else:
            worse = self.now - self.reference if self.relative else self.reference - self.now
        return (
            worse / self.standard_error
            if self.standard_error > 0
            else math.copysign(math.inf, worse)
        )

    def versus(self) -> str:
        kind = "estimated " if self.estimated else ""
        return (
            f"{kind}{self.label} {format_value(self.now)} "
            f"vs reference {format_value(self.reference)}"
        )

    def reason(self) -> str:
        """What a verdict says about it."""
        if self.basis:
            return f"{self.versus()} (outside its {self.basis}, {self.z:.1f} sd)"
        if self.relative:
            change = f"up {self.change:.0%} > {self.limit:.0%}"
        else:
            change = f"drop {self.change:.3f} > {self.limit}"
        return f"{self.versus()} ({change}, {self.z:.1f} standard errors)"


def judged_metrics(
    task: str, metric: str | None, current: Performance, threshold: float
) -> list[str]:
    """The metrics a window of ``task`` is judged on (see the module docs)."""
    spec = TASKS.get(task, TASKS["binary"])
    chosen = metric or spec.default_metric
    if chosen not in _ERRORS and chosen not in _ABSOLUTE:
        chosen = spec.default_metric  # no standard error to judge it by
    if spec.name == "multiclass" and not math.isfinite(current.get(chosen)):
        chosen = "accuracy"  # log loss without class probabilities
    names = [chosen]
    if spec.name == "binary":
        names.append(f"recall_at_{threshold:g}")
    return names


def check_performance(
    current: Performance,
    baseline: Performance,
    config: MonitoringConfig,
    *,
    task: str,
    metric: str | None = None,
) -> list[MetricCheck]:
    """The judged metrics of ``current`` against ``baseline`` (those both know)."""
    out: list[MetricCheck] = []
    for name in judged_metrics(task, metric, current, config.decision_threshold):
        now, then = current.get(name), baseline.get(name)
        if not (math.isfinite(now) and math.isfinite(then)):
            continue
        se = math.hypot(_se(current, name, current), _se(baseline, name, current))
        relative = name in _ERRORS
        if relative:
            worse = now - then
            change = worse / then if then > 0 else (math.inf if worse > 0 else 0.0)
            limit = config.max_error_increase
        else:
            worse = change = then - now
            limit = (
                config.max_recall_drop
                if name.startswith("recall_at_")
                else getattr(config, _ABSOLUTE[name])
            )
        dropped = change > limit and worse > config.drop_z * se
        out.append(MetricCheck(name, now, then, change, limit, relative, se, dropped))
    return out


def standard_error(p: Performance, name: str) -> float:
    """The standard error of ``p``'s value of ``name`` (see the module docs)."""
    return _se(p, name, p)


def _se(p: Performance, name: str, window: Performance) -> float:
    """The standard error of ``p``'s value of ``name``; see the module docs."""
    if name.startswith("recall_at_"):
        r = p.get(name)
        return math.sqrt(r * (1 - r) / max(p.positives, 1))
    stored = p.se(name)
    if math.isfinite(stored):
        return stored
    if name == "roc_auc":
        return auc_standard_error(p.roc_auc, p.positives, p.labelled - p.positives)
    own = window.se(name)
    if METRICS[name].per_row or name == "rmse":  # the window's spread, over p's rows
        return own * math.sqrt(window.labelled / max(p.labelled, 1))
    return math.nan
