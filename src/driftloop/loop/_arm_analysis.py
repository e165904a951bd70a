"""The default analysis: monitoring's per-arm comparison, with each model's rollout plan
as its limits.

At each check the challenger is compared with the champion on the audit log's rows since
the step began (after ``settle``: servers take about a second to follow a new policy):
error rate, p50/p99 latency, score shift between arms, shadow coverage and disagreement,
and the label metrics of the rows labelled so far (a recommender's: the hit rate of its
lists, a list hit when its label is at least the plan's ``hit_label``), error rate and
label metrics with always-valid sequential tests (``docs/loop-analysis.md``). The plan
gives the limits: ``max_error_rate``, ``max_p99_latency_ms``, ``min_sample``
(``shadow_requests`` in the shadow), ``min_labelled`` (labelled answers each arm needs
before a step passes; 0: a step does not wait for labels, though labels that arrive can
still roll it back), ``metric_margin`` and ``hit_label``. The traffic policy says the
stage, so a shadow that raises (and so writes nothing) is caught by its coverage.
"""

from __future__ import annotations

from datetime import datetime

from driftloop.core.config import RolloutPlan
from driftloop.loop._analysis import Verdict
from driftloop.loop._audit_analysis import StepAnalysis
from driftloop.monitoring import ArmLimits, compare_arms, verdict

__all__ = ["ArmAnalysis", "limits_of"]

_MIN_COVERAGE = 0.5  # a shadow scoring fewer of the copies it was sent has failed


def limits_of(plan: RolloutPlan, stage: str) -> ArmLimits:
    """The comparison's limits for one stage of ``plan``."""
    shadow = stage == "shadow"
    return ArmLimits(
        min_sample=(plan.shadow_requests or plan.min_sample) if shadow else plan.min_sample,
        min_labelled=plan.min_labelled,
        max_error_rate=plan.max_error_rate,
        max_p99_ms=plan.max_p99_latency_ms,
        metric_margin=plan.metric_margin,
        min_coverage=_MIN_COVERAGE if shadow else None,
    )


class ArmAnalysis(StepAnalysis):
    """Judges a step by :func:`driftloop.monitoring.compare_arms` (module docs)."""

    def judge(
        self, model: str, champion_version: int, challenger_version: int, since: datetime
    ) -> Verdict:
        plan = self.plans.get(model, RolloutPlan())
        span = self.span(model, challenger_version, since)
        if isinstance(span, Verdict):
            return span
        stage, _, start, now = span
        limits = limits_of(plan, stage)
        found = verdict(
            compare_arms(
                self.audit, model, champion_version, challenger_version, start, now,
                limits=limits, stage="shadow" if stage == "shadow" else "canary",
                hit_label=plan.hit_label,
            )
        )  # fmt: skip
        action = "promote_step" if found.action == "promote" else found.action
        numbers = {"stage": stage, **found.numbers}
        if found.comparison is not None:
            numbers["comparison"] = found.comparison.to_dict()
        return Verdict(action, f"{found.rule}: {found.reason}", numbers)
