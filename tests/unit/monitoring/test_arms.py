"""A challenger judged against its champion from the audit log the real server wrote, for
models trained on a table with text, boolean and missing columns (binary and regression):
a challenger scoring at random is rolled back once labels arrive, an identical one is
not (and is promoted with enough evidence), a raising one is rolled back on its errors
while no caller sees a failure, and a shadow is paired row by row with its primary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.audit import Label, SqliteAuditLog
from driftloop.core.config import FallbackPolicy, ServingConfig, TrafficPolicy, load_settings
from driftloop.monitoring import ArmComparison, ArmLimits, compare_arms, verdict
from driftloop.registry import LoadedModel, Registry
from driftloop.serving import InMemoryModelSource, ServedModel, create_app
from driftloop.training import TrainingPipeline
from tabular_world import TASK_LABELS, model_toml, table

INPUTS = ["income", "age", "owns_home", "channel", "region"]
SINCE = datetime(2026, 3, 1)
UNTIL = datetime(2026, 4, 1)
CANARY = TrafficPolicy(arms={"champion": 50, "challenger": 50}, sticky_key="application_id")
SHADOW = TrafficPolicy(shadow="challenger", shadow_sample=1.0)
_T = TypeVar("_T")


@pytest.fixture(scope="module", params=["binary", "regression"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, pd.DataFrame]]:
    """A model trained on one table, and later traffic (another draw of the same world)."""
    task = request.param
    root = tmp_path_factory.mktemp(task)
    (root / "data").mkdir()
    table(task, rows=2_000, seed=3).to_csv(root / "data" / "applications.csv", index=False)
    (root / "driftloop.toml").write_text(model_toml(task, name="loans"))
    settings = load_settings(root / "driftloop.toml", environ={})
    result = TrainingPipeline.from_settings(settings, "loans", params={"n_estimators": 30}).run()
    assert result.version is not None
    registry = Registry.from_settings(settings)
    yield registry, table(task, rows=3_000, seed=8)
    registry.close()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


def challenger_of(registry: Registry, change: Callable[[LoadedModel], None] | None) -> LoadedModel:
    """Version 2: the trained model, changed by ``change`` (None: the same model)."""
    model = registry.load("loans", 1)
    model.version = "2"
    if change is not None:
        change(model)
    return model


def scoring_at_random(model: LoadedModel) -> None:
    rng = np.random.default_rng(0)
    original = model.predict

    def predict(rows: np.ndarray) -> np.ndarray:
        out = original(rows)
        if model.task == "regression":  # plausible values, unrelated to the row
            return rng.normal(float(np.mean(out)), 40_000.0, len(out))
        return rng.random(len(out))

    model.predict = predict  # type: ignore[method-assign]


def raising(model: LoadedModel) -> None:
    original = model.predict

    def predict(rows: np.ndarray) -> np.ndarray:
        if np.isnan(rows).all():  # the warm-up on an all-missing row works: it loads
            return original(rows)
        raise RuntimeError("the release is broken")

    model.predict = predict  # type: ignore[method-assign]


def serve(
    registry: Registry, challenger: LoadedModel, audit: SqliteAuditLog, policy: TrafficPolicy
) -> TestClient:
    source = InMemoryModelSource()
    source.add("loans", "1", registry.load("loans", 1), aliases=["champion"])
    source.add("loans", "2", challenger, aliases=["challenger"])
    task = challenger.task
    served = ServedModel(
        "loans",
        "champion",
        traffic=policy,
        fallback=FallbackPolicy(default=200_000.0 if task == "regression" else 0.5),
    )
    config = ServingConfig.model_validate(
        {"cache": {"enabled": False}, "breaker": {"min_requests": 5, "open_s": 3600}}
    )
    return TestClient(create_app([served], source, settings=config, audit=audit, refresh_s=0))


def instance(row: Any) -> dict[str, Any]:
    """A table row as a client sends it: JSON numbers, booleans, text, nulls, event time."""
    out: dict[str, Any] = {
        "application_id": row.application_id,
        "applied_at": row.applied_at.isoformat() + "Z",
    }
    for name in INPUTS:
        value = getattr(row, name)
        out[name] = None if pd.isna(value) else value
    out["age"] = int(out["age"])
    return out


def send(client: TestClient, traffic: pd.DataFrame, per_request: int = 10) -> list[str]:
    """Every row of ``traffic`` in requests of ``per_request`` instances (each request one
    arm, by its first application's id); every answer a 200; the prediction ids."""
    rows = [instance(r) for r in traffic.itertuples()]
    ids: list[str] = []
    for i in range(0, len(rows), per_request):
        body = {"instances": rows[i : i + per_request]}
        response = client.post("/v1/models/loans/predict", json=body)
        assert response.status_code == 200, response.text
        ids.extend(p["prediction_id"] for p in response.json()["predictions"])
    return ids


def label(audit: SqliteAuditLog, ids: list[str], traffic: pd.DataFrame, model: LoadedModel) -> None:
    """Feedback for every prediction, encoded as the audit log keeps it."""
    truth = traffic[TASK_LABELS[model.task]]
    if model.task == "binary":
        values = (truth == model.classes[1]).astype(float)
    else:
        values = truth.astype(float)
    unknown = audit.add_labels(Label(i, float(v)) for i, v in zip(ids, values, strict=True))
    assert unknown == []


def eventually(check: Callable[[], _T | None], timeout: float = 30.0) -> _T:
    """Poll ``check`` until it gives a value (the shadow writes off the response path)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "timed out waiting for the shadow's records"
        time.sleep(0.05)


def all_paired(audit: SqliteAuditLog, n: int) -> ArmComparison | None:
    compared = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL)
    return compared if compared.paired == n else None


def test_a_challenger_scoring_at_random_is_rolled_back_once_labels_arrive(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, traffic = trained
    challenger = challenger_of(registry, scoring_at_random)
    with serve(registry, challenger, audit, CANARY) as client:
        ids = send(client, traffic)
    limits = ArmLimits(min_sample=500, min_labelled=200)
    before = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL, limits=limits)
    assert before.stage == "canary"
    assert before.task == challenger.task
    assert 0.35 < before.challenger.requests / len(traffic) < 0.65  # about half
    assert before.challenger.errors == 0
    assert before.challenger.labelled == 0
    judged = verdict(before, limits)
    assert (judged.action, judged.rule) == ("continue", "labels")  # nothing claimed yet
    label(audit, ids, traffic, challenger)
    after = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL, limits=limits)
    judged = verdict(after, limits)
    assert (judged.action, judged.rule) == ("rollback", "performance-drop")
    metric = "accuracy" if challenger.task == "binary" else "absolute_error"
    assert after.tests[metric].decision == "challenger_worse"
    # the numbers a controller logs: plain JSON, no NaN
    logged = json.loads(json.dumps(judged.to_dict(), allow_nan=False))
    assert logged["comparison"]["challenger"]["labelled"] == after.challenger.labelled
    main = "roc_auc" if challenger.task == "binary" else "mae"
    champion, random = after.champion.metrics[main], after.challenger.metrics[main]
    assert champion > random + 0.1 if main == "roc_auc" else champion < random


def test_an_identical_challenger_is_not_rolled_back_and_is_promoted_on_enough_evidence(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, traffic = trained
    challenger = challenger_of(registry, None)
    with serve(registry, challenger, audit, CANARY) as client:
        ids = send(client, traffic)
    label(audit, ids, traffic, challenger)
    strict = ArmLimits(min_sample=500, min_labelled=200, metric_margin=0.0)
    compared = compare_arms(audit, "loans", "1", "2", SINCE, UNTIL, limits=strict)
    assert compared.shift.psi < 0.1  # the same model on the same traffic
    assert all(t.decision != "challenger_worse" for t in compared.tests.values())
    assert verdict(compared, strict).action == "continue"  # "not worse" needs a margin
    lenient = ArmLimits(min_sample=500, min_labelled=200, metric_margin=0.25)
    compared = compare_arms(audit, "loans", "1", "2", SINCE, UNTIL, limits=lenient)
    judged = verdict(compared, lenient)
    assert (judged.action, judged.rule) == ("promote", "not-worse"), judged.reason


def test_a_raising_challenger_counts_its_errors_and_is_rolled_back_with_no_failed_answer(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, traffic = trained
    challenger = challenger_of(registry, raising)
    with serve(registry, challenger, audit, CANARY) as client:
        send(client, traffic.iloc[:600])  # every answer a 200: the champion answered
    compared = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL)
    assert compared.stage == "canary"
    assert compared.challenger.requests > 100
    assert compared.challenger.errors == compared.challenger.requests  # every one failed
    assert compared.champion.errors == 0
    assert compared.tests["errors"].decision == "challenger_worse"
    judged = verdict(compared, ArmLimits())
    assert (judged.action, judged.rule) == ("rollback", "error-rate")
    assert judged.numbers["error_rate"] == 1.0


def test_a_shadow_is_paired_with_its_primary_and_a_failing_one_is_rolled_back(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog, tmp_path: Path
) -> None:
    registry, traffic = trained
    rows = traffic.iloc[:400]
    challenger = challenger_of(registry, None)
    with serve(registry, challenger, audit, SHADOW) as client:
        ids = send(client, rows)
        compared = eventually(lambda: all_paired(audit, 400))
    assert compared.stage == "shadow"
    assert compared.coverage == 1.0
    assert compared.disagreement == 0.0  # the same model scored the same rows
    assert compared.shift.psi < 0.01
    assert compared.challenger.requests == 400
    limits = ArmLimits(min_sample=100, min_labelled=0, min_coverage=0.9)
    assert verdict(compared, limits).action == "promote"
    # with labels, pair by pair: 400 pairs are enough to show it within a 5% margin
    # (two independent samples would need thousands)
    label(audit, ids, rows, challenger)
    labelled = ArmLimits(min_sample=100, min_labelled=300, min_coverage=0.9)
    compared = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL, limits=labelled)
    assert {t.kind for t in compared.tests.values()} == {"paired"}
    judged = verdict(compared)
    assert (judged.action, judged.rule) == ("promote", "not-worse"), judged.reason
    failing = SqliteAuditLog(tmp_path / "failing.db", synchronous="normal")
    try:
        with serve(registry, challenger_of(registry, raising), failing, SHADOW) as client:
            send(client, rows)
        compared = compare_arms(failing, "loans", 1, 2, SINCE, UNTIL, stage="shadow")
    finally:
        failing.close()
    assert (compared.primary, compared.paired) == (400, 0)
    judged = verdict(compared, limits)
    assert (judged.action, judged.rule) == ("rollback", "shadow-coverage")


def test_a_shadow_scoring_at_random_is_rolled_back_on_its_labelled_pairs(
    trained: tuple[Registry, pd.DataFrame], audit: SqliteAuditLog
) -> None:
    registry, traffic = trained
    rows = traffic.iloc[:400]
    challenger = challenger_of(registry, scoring_at_random)
    with serve(registry, challenger, audit, SHADOW) as client:
        ids = send(client, rows)
        eventually(lambda: all_paired(audit, 400))
    label(audit, ids, rows, challenger)
    compared = compare_arms(audit, "loans", 1, 2, SINCE, UNTIL)
    if challenger.task == "binary":
        assert compared.disagreement > 0.3  # random scores fall on either side of 0.5
    judged = verdict(compared)
    assert (judged.action, judged.rule) == ("rollback", "performance-drop")
