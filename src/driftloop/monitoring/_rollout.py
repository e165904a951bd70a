"""The verdict on one check of a rollout step: roll back, promote, or keep watching.

Rules, in the order they are tried (the first that fires decides; its name is the
verdict's ``rule``):

=====================  ========  ====================================================
rule                   action    fires when
=====================  ========  ====================================================
``no-traffic``         continue  the challenger has no record in the window yet
``error-rate``         rollback  its error rate > ``max_error_rate`` (enough requests)
``errors-worse``       rollback  its error rate is significantly above the champion's
``latency-budget``     rollback  its p99 latency > ``max_p99_ms``
``latency-ratio``      rollback  its p99 > ``max_p99_ratio`` x the champion's
``performance-drop``   rollback  a label metric is significantly worse
``score-shift``        rollback  score PSI between the arms > ``max_score_psi``
``disagreement``       rollback  shadow pairs disagree more than ``max_disagreement``
``shadow-coverage``    rollback  fewer primary answers than ``min_coverage`` have a copy
``sample``             continue  fewer than ``min_sample`` challenger requests
``labels``             continue  fewer than ``min_labelled`` labelled answers per arm
                                 (not for a recommender's shadow: its lists are unseen)
``undecided``          continue  a sequential test is not yet "not worse"
``not-worse``          promote   none of the above: enough evidence it is not worse
=====================  ========  ====================================================

"Significantly" is the always-valid sequential tests' (see :mod:`driftloop.stats`), so
checking after every request does not raise false alarms beyond ``alpha``, and "not
worse" is their non-inferiority decision with the margins of :class:`ArmLimits`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from driftloop.monitoring._arm_limits import ArmLimits
from driftloop.monitoring._arms import ArmComparison, finite
from driftloop.stats import Decision, SequentialTest

__all__ = ["ArmVerdict", "verdict"]

Action = Literal["rollback", "promote", "continue"]


@dataclass(frozen=True)
class ArmVerdict:
    """What one check decided: ``action``, the ``rule`` that decided (see the module
    docs), the ``reason`` in words, the ``numbers`` that decided (JSON-ready) and the
    whole ``comparison`` it was taken on."""

    action: Action
    rule: str
    reason: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    comparison: ArmComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what a controller logs beside its decision."""
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "numbers": dict(self.numbers),
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
        }


def verdict(comparison: ArmComparison, limits: ArmLimits | None = None) -> ArmVerdict:
    """The verdict on ``comparison`` under ``limits`` (None: the comparison's own). The
    sequential tests are decided again with these limits' margins; their level (``alpha``)
    is the comparison's, fixed when their confidence sequences were computed."""
    limits = limits or comparison.limits
    if comparison.stage == "none":
        return ArmVerdict(
            "continue", "no-traffic", "the challenger has no record in the window yet",
            {}, comparison,
        )  # fmt: skip
    found = _rollback(comparison, limits) or _waiting(comparison, limits)
    if found is not None:
        action, rule, reason, numbers = found
    else:
        action, rule = "promote", "not-worse"
        tested = ", ".join(comparison.tests)
        reason = f"the challenger served {comparison.challenger.requests} requests and " + (
            f"is not worse than the champion on {tested}"
            if tested
            else "no rollback rule fired (no sequential test applies)"
        )
        numbers = {
            "requests": comparison.challenger.requests,
            **{f"{name}_lower": finite(t.lower) for name, t in comparison.tests.items()},
            **{f"{name}_upper": finite(t.upper) for name, t in comparison.tests.items()},
        }
    return ArmVerdict(action, rule, reason, numbers, comparison)


_Found = tuple[Action, str, str, dict[str, Any]] | None


def _rollback(c: ArmComparison, limits: ArmLimits) -> _Found:
    champion, challenger = c.champion, c.challenger
    if challenger.requests >= limits.min_error_requests and (
        challenger.error_rate > limits.max_error_rate
    ):
        return (
            "rollback",
            "error-rate",
            f"the challenger failed {challenger.errors} of {challenger.requests} requests "
            f"({challenger.error_rate:.1%} > max_error_rate {limits.max_error_rate:.1%})",
            {"errors": challenger.errors, "requests": challenger.requests,
             "error_rate": challenger.error_rate, "max_error_rate": limits.max_error_rate},
        )  # fmt: skip
    errors = c.tests.get("errors")
    if errors is not None and _decision("errors", errors, limits) == "challenger_worse":
        return (
            "rollback",
            "errors-worse",
            f"the challenger's error rate {errors.challenger:.2%} is significantly above the "
            f"champion's {errors.champion:.2%} (p = {errors.p_value:.2g})",
            {"errors": errors.to_dict()},
        )
    latency = challenger.answered >= limits.min_latency_requests
    if latency and limits.max_p99_ms is not None and challenger.p99_ms > limits.max_p99_ms:
        return (
            "rollback",
            "latency-budget",
            f"the challenger's p99 latency {challenger.p99_ms:.1f} ms is over the budget "
            f"{limits.max_p99_ms:g} ms",
            {"p99_ms": challenger.p99_ms, "max_p99_ms": limits.max_p99_ms},
        )
    ratio = limits.max_p99_ratio
    if (
        latency
        and ratio is not None
        and champion.answered >= limits.min_latency_requests
        and challenger.p99_ms > ratio * champion.p99_ms
    ):
        return (
            "rollback",
            "latency-ratio",
            f"the challenger's p99 latency {challenger.p99_ms:.1f} ms is over {ratio:g} x "
            f"the champion's {champion.p99_ms:.1f} ms",
            {"p99_ms": challenger.p99_ms, "champion_p99_ms": champion.p99_ms,
             "max_p99_ratio": ratio},
        )  # fmt: skip
    for name, test in c.tests.items():
        if name != "errors" and _decision(name, test, limits) == "challenger_worse":
            return (
                "rollback",
                "performance-drop",
                f"the challenger's {name.replace('_', ' ')} {test.challenger:.4g} is "
                f"significantly worse than the champion's {test.champion:.4g} "
                f"(p = {test.p_value:.2g}, {test.n_challenger} and {test.n_champion} labelled)",
                {name: test.to_dict()},
            )
    return _shadow_rollback(c, limits)


def _shadow_rollback(c: ArmComparison, limits: ArmLimits) -> _Found:
    psi = c.shift.psi
    if limits.max_score_psi is not None and math.isfinite(psi) and psi > limits.max_score_psi:
        return (
            "rollback",
            "score-shift",
            f"the challenger's scores moved from the champion's: PSI {psi:.3f} > "
            f"{limits.max_score_psi:g}",
            {"psi": psi, "max_score_psi": limits.max_score_psi},
        )
    enough = c.paired >= limits.min_error_requests
    most = limits.max_disagreement
    if most is not None and enough and c.disagreement > most:
        return (
            "rollback",
            "disagreement",
            f"the shadow disagrees with the champion on {c.disagreement:.1%} of "
            f"{c.paired} requests (> {most:.1%})",
            {"disagreement": c.disagreement, "paired": c.paired, "max_disagreement": most},
        )
    least = limits.min_coverage
    if (
        least is not None
        and c.stage == "shadow"
        and c.primary >= limits.min_error_requests
        and c.coverage < least
    ):
        return (
            "rollback",
            "shadow-coverage",
            f"the shadow scored {c.paired} of {c.primary} requests "
            f"({c.coverage:.1%} < min_coverage {least:.1%}): it fails or falls behind",
            {"coverage": finite(c.coverage), "paired": c.paired, "min_coverage": least},
        )
    return None


def _waiting(c: ArmComparison, limits: ArmLimits) -> _Found:
    challenger = c.challenger
    if challenger.requests < limits.min_sample:
        return (
            "continue",
            "sample",
            f"the challenger served {challenger.requests} of {limits.min_sample} requests",
            {"requests": challenger.requests, "min_sample": limits.min_sample},
        )
    least = min(c.champion.labelled, challenger.labelled)
    unseen = c.stage == "shadow" and c.task == "recommendation"  # no one saw its lists
    if limits.min_labelled and least < limits.min_labelled and not unseen:
        return (
            "continue",
            "labels",
            f"{least} of {limits.min_labelled} labelled answers per arm so far",
            {"labelled": least, "min_labelled": limits.min_labelled},
        )
    for name, test in c.tests.items():
        decided = _decision(name, test, limits)
        if decided != "challenger_not_worse" and (name == "errors" or limits.min_labelled):
            return (
                "continue",
                "undecided",
                f"{name.replace('_', ' ')}: not yet shown to be within the margin "
                f"{limits.margin(name, test.champion):.4g} of the champion (difference in "
                f"[{test.lower:.4g}, {test.upper:.4g}])",
                {name: test.to_dict(), "margin": limits.margin(name, test.champion)},
            )
    return None


def _decision(name: str, test: SequentialTest, limits: ArmLimits) -> Decision:
    return test.decide(limits.margin(name, test.champion))
