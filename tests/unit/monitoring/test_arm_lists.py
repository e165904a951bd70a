"""A recommender's canary judged by the feedback on its lists: each served list labelled a
click (1) or none (0) through ``/v1/feedback`` is a hit or a miss, and the arms' hit rates
are compared with the sequential proportions test, so a challenger users click less is
rolled back and one they click as much is not. Audit rows are written as the recommend
endpoint writes them (route ``recommend``, the list in ``outputs["items"]``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from driftloop.audit import AuditRecord, Label, SqliteAuditLog
from driftloop.monitoring import ArmLimits, compare_arms, verdict

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=1)
LIMITS = ArmLimits(min_sample=100, min_labelled=0)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


def served_lists(
    audit: SqliteAuditLog,
    rates: dict[str, float],
    *,
    lists: int = 1_500,
    seed: int = 0,
    labelled: float = 1.0,
    route: str = "recommend",  # "shadow": version 2 only scores copies of 1's requests
    label_values: tuple[float, float] = (1.0, 0.0),
) -> None:
    """``lists`` recommend answers per version, interleaved over the day, each clicked
    with its version's rate; a share ``labelled`` of them gets feedback (hit, miss)."""
    rng = np.random.default_rng(seed)
    records, labels = [], []
    step = (UNTIL - SINCE) / (lists * len(rates) + 1)
    k = 0
    for i in range(lists):
        for version, rate in rates.items():
            k += 1
            shadow = route == "shadow" and version != "1"
            pid = f"p1-{i}:shadow" if shadow else f"p{version}-{i}"
            stamp = SINCE + k * step
            items = [f"{version}-{(i + j) % 50}" for j in range(5)]
            records.append(
                AuditRecord(
                    prediction_id=pid,
                    ts=stamp,
                    model="movies",
                    version=version,
                    route="shadow" if shadow else "recommend",
                    score=float(rng.random()),
                    decision="personalized",
                    latency_ms=4.0,
                    features={"n": 5, "interactions": 20},
                    entity_keys={"user_id": f"u{i}"},
                    served_at=stamp,
                    outputs={"items": items, "level": "personalized", "scores": [1.0] * 5},
                )
            )
            if rng.random() < labelled and not shadow:
                hit = rng.random() < rate
                labels.append(Label(pid, label_values[0] if hit else label_values[1], stamp))
    audit.write(records)
    audit.add_labels(labels)


def test_a_canary_whose_lists_users_click_less_is_rolled_back(audit: SqliteAuditLog) -> None:
    served_lists(audit, {"1": 0.30, "2": 0.15})
    found = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=LIMITS)
    assert found.task == "recommendation"
    assert found.stage == "canary"
    test = found.tests["hit_rate"]
    assert test.decision == "challenger_worse"
    assert found.champion.labelled == found.challenger.labelled == 1_500
    assert found.champion.metrics["hit_rate"] == pytest.approx(0.30, abs=0.04)
    assert found.challenger.metrics["hit_rate"] == pytest.approx(0.15, abs=0.04)
    judged = verdict(found)
    assert (judged.action, judged.rule) == ("rollback", "performance-drop")
    assert "hit rate" in judged.reason


def test_a_canary_clicked_as_often_raises_no_false_alarm_and_is_promoted(
    audit: SqliteAuditLog,
) -> None:
    served_lists(audit, {"1": 0.30, "2": 0.30}, seed=7)
    found = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=LIMITS)
    assert found.tests["hit_rate"].decision != "challenger_worse"
    assert verdict(found).action != "rollback"
    # with a margin the evidence can show (a tenth of the champion's 0.30 hit rate), and
    # labels waited for, the step passes
    wide = ArmLimits(min_sample=100, min_labelled=1_000, metric_margin=0.3)
    passed = verdict(compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=wide))
    assert (passed.action, passed.rule) == ("promote", "not-worse")


def test_unlabelled_lists_count_neither_as_hits_nor_as_misses(audit: SqliteAuditLog) -> None:
    # the challenger's feedback lags: only a third of its lists labelled so far, at the
    # same click rate; were unlabelled lists misses, it would look clicked far less
    served_lists(audit, {"1": 0.30}, seed=1)
    served_lists(audit, {"2": 0.30}, seed=2, labelled=1 / 3)
    found = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=LIMITS)
    assert found.challenger.requests == 1_500
    assert 400 <= found.challenger.labelled <= 600
    assert found.challenger.metrics["hit_rate"] == pytest.approx(0.30, abs=0.06)
    assert verdict(found).action != "rollback"


def test_ratings_count_as_hits_from_the_hit_label(audit: SqliteAuditLog) -> None:
    # star ratings: a hit is a 4 or a 5, a miss a 2; the challenger's lists are rated
    # well half as often
    served_lists(audit, {"1": 0.40, "2": 0.20}, label_values=(5.0, 2.0), seed=3)
    as_clicks = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=LIMITS)
    assert as_clicks.champion.metrics["hit_rate"] == 1.0  # every rating >= 1
    by_rating = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=LIMITS, hit_label=4.0)
    assert by_rating.champion.metrics["hit_rate"] == pytest.approx(0.40, abs=0.04)
    assert verdict(by_rating).rule == "performance-drop"


def test_a_shadow_list_is_not_judged_by_a_label_given_to_the_list_the_user_saw(
    audit: SqliteAuditLog,
) -> None:
    served_lists(audit, {"1": 0.30, "2": 0.0}, route="shadow")
    limits = ArmLimits(min_sample=100, min_labelled=200)
    found = compare_arms(audit, "movies", 1, 2, SINCE, UNTIL, limits=limits)
    assert found.stage == "shadow"
    assert found.paired == 1_500
    assert "hit_rate" not in found.tests
    assert found.challenger.labelled == 0
    assert found.disagreement == 1.0  # every copy's list holds other items
    assert (verdict(found).action, verdict(found).rule) == ("promote", "not-worse")
