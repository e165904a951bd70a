"""Two controllers started together on one registry database (SQLite and PostgreSQL):
exactly one acts on a model, and the decision log is its alone."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.loop import history, request_retrain
from driftloop.registry import Registry, Signature
from loop_helpers import one_pass
from registry_helpers import postgres_schema, toy_lightgbm

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/registry.db"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as scoped:
        yield scoped


def test_two_controllers_started_together_exactly_one_acts(url: str, tmp_path: Path) -> None:
    artifacts = str(tmp_path / "artifacts")
    registry = Registry.from_url(url, artifacts)
    fitted, X = toy_lightgbm()
    registry.register("loans", fitted, signature=Signature.from_frame(X), alias="champion")
    request_retrain(registry, "loans", "two controllers", who="ci")

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=one_pass, args=(url, artifacts, name, barrier, results))
        for name in ("ctl-a", "ctl-b")
    ]
    for w in workers:
        w.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    acted = {holder: actions for holder, actions in outcome.items() if actions}
    assert len(acted) == 1, outcome
    ((leader, actions),) = acted.items()
    assert actions == ["retrain", "trained", "canary", "canary", "promote"]
    decisions = history(registry.engine, "loans")
    assert [d.action for d in decisions] == ["request", *actions]
    assert {d.who for d in decisions[1:]} == {leader}
    assert registry.aliases("loans") == {"champion": 2}
    assert len(registry.versions("loans")) == 2  # one retraining, not two
    registry.close()
