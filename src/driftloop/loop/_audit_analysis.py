"""The built-in analysis: the challenger's error rate, read from the audit log.

The audit log keeps every answer under the version that gave it; a challenger that
raises, or whose breaker is open, is answered for by the next link of the fallback chain
(the champion, the rules), so its failures show as *missing* rows: of ``N`` answered
requests since the step began, a challenger sent a share ``p`` of them (its canary weight,
or the shadow sample) answers ``n`` and its error rate is about ``1 - n / (N p)``. The
check rolls back when ``n`` falls short of ``N p (1 - max_error_rate)`` by more than ``z``
binomial standard errors (3 by default: noise does not roll back) and at least
``min_expected`` rows were expected of it, and passes the step once the challenger
answered ``min_sample`` rows (``shadow_requests`` in the shadow). Rows of the first
``settle`` after the step began are not judged: servers poll the policy (about a second
to reach every worker), so the first requests after a change still follow the old one.

Limits, said plainly: sticky routing splits keys, not rows, so few heavy keys bias the
share; shadow copies dropped by a full shadow queue count as failures; latency, score
shift and label metrics are not judged here (``driftloop.monitoring``'s per-arm
comparison judges them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop.audit import AuditLog
from driftloop.core.config import RolloutPlan
from driftloop.loop._analysis import Verdict
from driftloop.registry import TrafficStore

__all__ = ["AuditArmAnalysis", "StepAnalysis", "arm_share"]


def arm_share(policy: Mapping[str, Any] | None, challenger: int) -> tuple[str, float]:
    """The stage a traffic policy is in for the ``challenger`` version and its share of
    requests: ``("shadow", sample)``, ``("canary", weight / total)`` or ``("none", 0)``."""
    if not policy:
        return "none", 0.0
    names = {"challenger", str(challenger)}
    if policy.get("shadow") in names:
        return "shadow", float(policy.get("shadow_sample", 1.0))
    arms: Mapping[str, float] = policy.get("arms") or {}
    total = sum(float(w) for w in arms.values())
    mine = sum(float(w) for arm, w in arms.items() if arm in names)
    return ("canary", mine / total) if total > 0 and mine > 0 else ("none", 0.0)


class StepAnalysis:
    """What the analyses share: the audit log, the traffic store whose policy says the
    challenger's stage and share, the models' rollout plans and the clock; and the span
    of rows a check judges."""

    def __init__(
        self,
        audit: AuditLog,
        traffic: TrafficStore,
        plans: Mapping[str, RolloutPlan],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        settle: timedelta = timedelta(seconds=2),
    ) -> None:
        self.audit = audit
        self.traffic = traffic
        self.plans = plans
        self.clock = clock
        self.settle = settle

    def span(
        self, model: str, challenger: int, since: datetime
    ) -> tuple[str, float, datetime, datetime] | Verdict:
        """The stage and share the policy gives ``challenger``, where its judged rows
        start (``since`` + ``settle``: servers take about a second to follow a new
        policy) and now; or the ``continue`` verdict when there is nothing to judge."""
        state = self.traffic.get(model)
        stage, share = arm_share(state.policy if state else None, challenger)
        if stage == "none":
            return Verdict("continue", "the traffic policy sends the challenger nothing yet")
        start, now = since + self.settle, self.clock()
        if now <= start:
            return Verdict("continue", f"settling: the first {self.settle} are not judged")
        return stage, share, start, now


class AuditArmAnalysis(StepAnalysis):
    """Judges a challenger's arm by its answered share in the audit log (module docs).

    ``plans`` are the models' rollout plans (their ``min_sample``, ``shadow_requests``,
    ``max_error_rate``); ``traffic`` the store whose policy says the challenger's share.
    """

    def __init__(
        self,
        audit: AuditLog,
        traffic: TrafficStore,
        plans: Mapping[str, RolloutPlan],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        z: float = 3.0,
        min_expected: float = 20.0,
        settle: timedelta = timedelta(seconds=2),
    ) -> None:
        super().__init__(audit, traffic, plans, clock=clock, settle=settle)
        self.z = z
        self.min_expected = min_expected

    def judge(
        self, model: str, champion_version: int, challenger_version: int, since: datetime
    ) -> Verdict:
        plan = self.plans.get(model, RolloutPlan())
        span = self.span(model, challenger_version, since)
        if isinstance(span, Verdict):
            return span
        stage, share, start, now = span
        frame = self.audit.window(start, now, model=model)
        route = frame["route"].astype(str)
        version = frame["version"].astype(str)
        shadow = route == "shadow"
        mine = version == str(challenger_version)
        if stage == "shadow":  # copies are made of requests a model answered
            answered = int((~shadow & ~route.str.contains(":", regex=False)).sum())
            observed = int((shadow & mine).sum())
            need = plan.shadow_requests or plan.min_sample
        else:
            answered = int((~shadow).sum())
            observed = int((~shadow & mine).sum())
            need = plan.min_sample
        limit = plan.max_error_rate
        expected = answered * share
        p0 = share * (1.0 - limit)
        sd = math.sqrt(answered * p0 * (1.0 - p0))
        z = (answered * p0 - observed) / sd if sd > 0 else 0.0
        numbers = {
            "stage": stage,
            "share": round(share, 6),
            "answered": answered,
            "challenger_rows": observed,
            "champion_version": champion_version,
            "expected_rows": round(expected, 2),
            "error_rate": round(max(0.0, 1.0 - observed / expected), 6) if expected else 0.0,
            "max_error_rate": limit,
            "z": round(z, 3),
            "min_sample": need,
        }
        if z > self.z and expected >= self.min_expected:
            return Verdict(
                "rollback",
                f"error rate: the challenger answered {observed} of ~{expected:.0f} requests "
                f"sent to it (error rate ~{numbers['error_rate']:.1%} > max_error_rate "
                f"{limit:.1%}, {z:.1f} > {self.z} standard errors)",
                numbers,
            )
        if observed >= need:
            return Verdict(
                "promote_step",
                f"sample: the challenger answered {observed} >= {need} rows with an error "
                f"rate within {limit:.1%}",
                numbers,
            )
        return Verdict("continue", f"sample: {observed} of {need} rows so far", numbers)
