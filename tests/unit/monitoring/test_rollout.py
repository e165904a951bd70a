"""The verdict's rules, each on an audit log written record by record, so latency, errors,
labels and shadow pairs are exactly what the rule needs (the server writes the same
records: tests/unit/monitoring/test_arms.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftloop.audit import AuditRecord, Label, SqliteAuditLog
from driftloop.core.errors import InvalidParameterError
from driftloop.loop import Analysis, Verdict
from driftloop.monitoring import ArmLimits, compare_arms, verdict

T0 = datetime(2026, 5, 1, tzinfo=UTC)
END = T0 + timedelta(days=1)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


def records(
    version: str,
    n: int,
    *,
    route: str = "v1",
    latency: float = 2.0,
    scores: Any = None,
    start: int = 0,
    outputs: Any = None,
    prefix: str | None = None,
) -> list[AuditRecord]:
    rng = np.random.default_rng(n + start)
    values = rng.random(n) if scores is None else np.asarray(scores, dtype=float)
    suffix = ":shadow" if route == "shadow" else ""
    return [
        AuditRecord(
            prediction_id=f"{prefix or version}-{start + i}{suffix}",
            ts=T0 + timedelta(seconds=start + i),
            model="loans",
            version=version,
            route=route,
            score=float(values[i]),
            decision="",
            latency_ms=latency,
            features={"region": "north", "owns_home": bool(i % 2), "income": None},
            served_at=T0 + timedelta(seconds=start + i),
            outputs=outputs(values[i]) if outputs is not None else None,
        )
        for i in range(n)
    ]


def test_nothing_from_the_challenger_yet_means_keep_watching(audit: SqliteAuditLog) -> None:
    audit.write(records("1", 50))
    judged = verdict(compare_arms(audit, "loans", 1, 2, T0, END))
    assert (judged.action, judged.rule) == ("continue", "no-traffic")


@pytest.mark.parametrize("stage", [None, "canary", "shadow"])
def test_an_empty_window_keeps_watching(audit: SqliteAuditLog, stage: Any) -> None:
    """Right after a step begins (or after a controller restart) nothing was served yet:
    a verdict, not an error (an empty window once raised and stopped the controller)."""
    judged = verdict(compare_arms(audit, "loans", 1, 2, T0, END, stage=stage))
    assert judged.action == "continue"


def test_a_challenger_over_its_latency_budget_is_rolled_back(audit: SqliteAuditLog) -> None:
    audit.write(records("1", 300, latency=3.0) + records("2", 300, latency=40.0, start=1000))
    limits = ArmLimits(max_p99_ms=25.0)
    compared = compare_arms(audit, "loans", 1, 2, T0, END, limits=limits)
    assert compared.challenger.p99_ms == pytest.approx(40.0)
    judged = verdict(compared, limits)
    assert (judged.action, judged.rule) == ("rollback", "latency-budget")
    assert judged.numbers == {"p99_ms": 40.0, "max_p99_ms": 25.0}
    ratio = ArmLimits(max_p99_ratio=3.0)
    assert verdict(compared, ratio).rule == "latency-ratio"
    few = ArmLimits(max_p99_ms=25.0, min_latency_requests=1_000)  # too few answers to tell
    assert verdict(compared, few).action == "continue"


def test_the_sample_then_the_labels_are_waited_for(audit: SqliteAuditLog) -> None:
    audit.write(records("1", 300) + records("2", 300, start=1000))
    compared = compare_arms(audit, "loans", 1, 2, T0, END)
    assert verdict(compared, ArmLimits(min_sample=400)).rule == "sample"
    assert verdict(compared, ArmLimits(min_sample=200, min_labelled=10)).rule == "labels"
    # without labels: no error in 300 requests does not show an error rate within 1%...
    unlabelled = ArmLimits(min_sample=200, min_labelled=0)
    assert verdict(compared, unlabelled).rule == "undecided"
    # ...but within 2% it does, and that is enough to promote
    judged = verdict(compared, ArmLimits(min_sample=200, min_labelled=0, error_margin=0.02))
    assert (judged.action, judged.rule) == ("promote", "not-worse")


def test_a_drop_in_accuracy_of_a_multiclass_model_is_a_performance_drop(
    audit: SqliteAuditLog,
) -> None:
    classes = ("basic", "plus", "pro")
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 1_200)
    right = rng.random(1_200) < 0.9
    champion_class = np.where(right, truth, (truth + 1) % 3)
    guess = rng.integers(0, 3, 1_200)  # the challenger: right a third of the time

    def write(version: str, chosen: Any, start: int) -> None:
        rows = records(version, 600, start=start, scores=np.full(600, 0.8))
        rows = [
            AuditRecord(**{**_fields(r), "outputs": {"class": classes[c]}, "decision": classes[c]})
            for r, c in zip(rows, chosen, strict=True)
        ]
        audit.write(rows)
        audit.add_labels(
            Label(r.prediction_id, float(y))
            for r, y in zip(rows, truth[start : start + 600], strict=True)
        )

    write("1", champion_class[:600], 0)
    write("2", guess[600:], 600)
    compared = compare_arms(audit, "loans", 1, 2, T0, END, classes=classes)
    assert compared.task == "multiclass"
    assert compared.tests["accuracy"].decision == "challenger_worse"
    assert verdict(compared).rule == "performance-drop"


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in AuditRecord.__dataclass_fields__}


def test_a_shadow_that_disagrees_or_moves_its_scores_is_rolled_back_when_asked(
    audit: SqliteAuditLog,
) -> None:
    rng = np.random.default_rng(9)
    primary = rng.random(400)
    audit.write(records("1", 400, scores=primary))
    audit.write(records("2", 400, route="shadow", scores=1.0 - primary, prefix="1"))
    compared = compare_arms(audit, "loans", 1, 2, T0, END)
    assert compared.stage == "shadow"
    assert compared.paired == 400
    assert compared.disagreement > 0.9  # 1 - p is on the other side of 0.5
    assert verdict(compared, ArmLimits(max_disagreement=0.2)).rule == "disagreement"
    assert verdict(compared, ArmLimits(min_sample=100, min_labelled=0)).action == "promote"
    skewed = compare_arms(audit, "loans", 1, 2, T0, END)
    assert skewed.shift.psi < 0.2  # uniform scores mirrored stay uniform
    audit.write(records("2", 400, route="shadow", scores=primary**4, prefix="1", start=400))
    audit.write(records("1", 400, scores=primary, start=400))
    moved = compare_arms(audit, "loans", 1, 2, T0, END)
    assert moved.shift.psi > 0.2
    assert verdict(moved, ArmLimits(max_score_psi=0.2)).rule == "score-shift"


def test_regression_shadow_pairs_disagree_by_the_tolerance_in_standard_deviations(
    audit: SqliteAuditLog,
) -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(200_000, 40_000, 300)
    shifted = values + np.where(np.arange(300) < 60, 10_000, 1_000)  # 0.25 sd and 0.025 sd
    outputs = lambda v: {"value": float(v)}  # noqa: E731
    audit.write(records("1", 300, scores=values, outputs=outputs))
    audit.write(records("2", 300, route="shadow", scores=shifted, outputs=outputs, prefix="1"))
    compared = compare_arms(audit, "loans", 1, 2, T0, END)
    assert compared.task == "regression"
    assert compared.disagreement == pytest.approx(0.2)
    json.dumps(compared.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_error_rate", 1.5), ("alpha", 0.0), ("min_sample", -1), ("max_p99_ms", 0.0)],
)
def test_limits_out_of_range_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(InvalidParameterError, match=f"'{field}'"):
        ArmLimits(**{field: value})  # type: ignore[arg-type]


class ArmAnalysis:
    """The loop controller's analysis seam judged by the per-arm comparison (the example
    of docs/loop-analysis.md)."""

    def __init__(self, audit: Any, limits: ArmLimits, clock: Any) -> None:
        self.audit, self.limits, self.clock = audit, limits, clock

    def judge(
        self, model: str, champion_version: int, challenger_version: int, since: datetime
    ) -> Verdict:
        found = verdict(
            compare_arms(
                self.audit, model, champion_version, challenger_version, since, self.clock(),
                limits=self.limits,
            )
        )  # fmt: skip
        action = "promote_step" if found.action == "promote" else found.action
        return Verdict(action, f"{found.rule}: {found.reason}", found.to_dict())


def test_the_verdict_plugs_into_the_loop_controllers_analysis_seam(
    audit: SqliteAuditLog,
) -> None:
    failing = records("1", 60, route="v1:champion", prefix="f", start=5_000)
    audit.write(records("1", 600) + records("2", 600, start=1_000) + failing)
    analysis = ArmAnalysis(audit, ArmLimits(min_sample=100, min_labelled=0), lambda: END)
    assert isinstance(analysis, Analysis)
    judged = analysis.judge("loans", 1, 2, T0)
    assert (judged.action, judged.rule.split(":")[0]) == ("rollback", "error-rate")
    json.dumps(judged.numbers, allow_nan=False)  # the decision log keeps them as JSON
    # before the failures began: no error in 600 requests per arm, the step passes
    before = T0 + timedelta(seconds=4_000)
    healthy = ArmAnalysis(audit, ArmLimits(min_sample=100, min_labelled=0), lambda: before)
    passed = healthy.judge("loans", 1, 2, T0)
    assert (passed.action, passed.rule.split(":")[0]) == ("promote_step", "not-worse")
