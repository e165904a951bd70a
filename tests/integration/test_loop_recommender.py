"""The loop rolls out a recommender as it does any model, against a real server: the
retrainer trains on the project's ``[recsys.data.movies]`` interactions and passes the
offline NDCG@10 gate; the new version is shadowed, canaried and promoted while the server
follows (each arm a whole version with its own index); a challenger that raises on every
call is rolled back at its first canary step with every request answered; a challenger
whose lists users never click (feedback labels 0) while they click the champion's (1) is
rolled back on its hit rate, and one clicked as often is promoted.

The server follows the registry's aliases and the traffic policy the loop sets (the same
database); nothing but the registry connects the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
import pytest
import uvicorn

from driftloop.audit import open_audit_log
from driftloop.cli._serve_recsys import split_recommenders
from driftloop.core.config import Settings, load_settings
from driftloop.loop import (
    LoopController,
    RecommenderRetrainer,
    Trained,
    history,
    request_retrain,
    rollout_state,
)
from driftloop.registry import Registry
from driftloop.serving import InMemoryModelSource, ServedRecommender, create_app
from recsys_world import FAST, broken, world

for _module in ("torch", "hnswlib", "implicit"):
    pytest.importorskip(_module, reason="needs the recsys extra: pip install 'driftloop[recsys]'")
from driftloop.recsys import (  # noqa: E402
    Catalog,
    Recommender,
    register_recommender,
    train_recommender,
)

pytestmark = pytest.mark.integration
BOUND = 900.0  # seconds: a bound for a stuck rollout (a loaded machine), not a timing assertion
CLIENTS = 3  # concurrent callers: the canary needs a few thousand answers to decide
PLAN = {"shadow_requests": 100, "shadow_time": "0s", "canary_steps": [50], "dwell": "0s",
        "min_sample": 100, "max_error_rate": 0.05}  # fmt: skip


def recent_world() -> tuple[pd.DataFrame, Catalog]:
    """The test world's interactions moved to end an hour ago (the loop retrains on the
    last ``lookback``)."""
    frame, catalog = world(users=120, per_user=24)
    shift = pd.Timestamp.now(tz="UTC") - timedelta(hours=1) - frame["timestamp"].max()
    return frame.assign(timestamp=frame["timestamp"] + shift), catalog


def project(tmp_path: Path, plan: dict[str, Any]) -> Settings:
    """A project whose ``movies`` interactions, users and items are Parquet files."""
    frame, catalog = recent_world()
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "ratings.parquet")
    catalog.users.to_parquet(data / "users.parquet")
    catalog.items.assign(genres=catalog.items["genres"].map(list)).to_parquet(
        data / "items.parquet"
    )
    overrides = {
        "recsys": {
            "data": {
                "movies": {
                    "interactions": "data/ratings.parquet",
                    "users": "data/users.parquet",
                    "items": "data/items.parquet",
                    "user_features": ["gender", "age_group"],
                    "item_tags": "genres",
                    "item_year": "year",
                    "cohort": ["gender", "age_group"],
                }
            }
        },
        "loop": {"movies": {"lookback": "90d", "triggers": {"drift_features": 0}, "rollout": plan}},
        "serving": {"cache": {"enabled": False}},
    }
    return load_settings(root=tmp_path, environ={}, overrides=overrides)


def champion_of(settings: Settings, registry: Registry) -> Recommender:
    """Version 1: trained on the first week only (stale), its ``train_end`` recorded."""
    frame, catalog = recent_world()
    end = frame["timestamp"].min() + timedelta(days=7)
    rec = train_recommender(frame[frame["timestamp"] < end], catalog, name="movies", config=FAST)
    register_recommender(
        registry, "movies", rec, alias="champion", params={"train_end": end.isoformat()}
    )
    return rec


class Served:
    """``driftloop serve``'s app for the project's recommenders on a real port."""

    def __init__(self, settings: Settings, registry: Registry, served: list[ServedRecommender],
                 sessions: Any) -> None:  # fmt: skip
        self.audit = open_audit_log(settings.audit.url, root=settings.root)
        app = create_app(
            [],
            InMemoryModelSource(),
            settings=settings.serving,
            audit=self.audit,
            traffic=registry.traffic,
            refresh_s=0.2,
            recommenders=served,
            sessions=sessions,
        )
        self.app = app
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + BOUND
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.audit.close()


def _free_port() -> int:
    from services import free_port

    return free_port()


def clients(
    base: str,
    stop: threading.Event,
    answers: list[tuple[int, dict[str, Any]]],
    seed: int,
    clicks: dict[str, int] | None = None,
) -> None:
    """Ask for lists until ``stop``; with ``clicks`` (by version), label each list with
    its version's click (1) or none (0) through ``/v1/feedback``."""
    with httpx2.Client(base_url=base, timeout=30) as http:
        i = seed * 1_000_000
        while not stop.is_set():
            i += 1
            body = {"user_id": f"u{i % 120}" if i % 3 else f"new-{i}", "n": 5}
            response = http.post("/v1/models/movies/recommend", json=body)
            answers.append((response.status_code, response.json()))
            if clicks is not None and response.status_code == 200:
                answer = response.json()
                label = {"prediction_id": answer["id"], "label": clicks[answer["version"]]}
                http.post("/v1/feedback", json={"labels": [label]}).raise_for_status()


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[Settings, Registry, Recommender]]:
    settings = project(tmp_path, PLAN)
    registry = Registry.from_settings(settings)
    rec = champion_of(settings, registry)
    yield settings, registry, rec
    registry.close()


def run_loop(
    controller: LoopController,
    registry: Registry,
    base: str,
    clicks: dict[str, int] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Requests flow (each list labelled by ``clicks``, when given) while the loop runs
    the rollout to rest; every answer."""
    stop, answers = threading.Event(), []
    loads = [
        threading.Thread(target=clients, args=(base, stop, answers, k, clicks))
        for k in range(CLIENTS)
    ]
    for load in loads:
        load.start()
    deadline = time.monotonic() + BOUND
    try:
        request_retrain(registry, "movies", "a week of new interactions", who="ci")
        while time.monotonic() < deadline:
            controller.run_once()
            state = rollout_state(registry.engine, "movies")
            if state.since is not None and state.resting:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for load in loads:
            load.join(60)
    return answers


def test_a_better_recommender_goes_through_shadow_and_canary_to_champion_while_served(
    loaded: tuple[Settings, Registry, Recommender],
) -> None:
    settings, registry, _ = loaded
    served, sessions = split_recommenders(registry, ["movies"], settings)[1:]
    retrainer = RecommenderRetrainer(settings, registry, config=FAST)
    controller = LoopController.from_settings(settings, holder="loop-test", retrainer=retrainer)
    with Served(settings, registry, served, sessions) as server:
        try:
            answers = run_loop(controller, registry, server.base)
            assert registry.aliases("movies") == {"champion": 2}, history(registry.engine, "movies")
            # the server follows the promotion within its refresh: version 2 answers alone
            # (one user answering 2 proves nothing: a canary user did before the promotion,
            # and the alias and the policy are refreshed separately)
            deadline = time.monotonic() + BOUND
            with httpx2.Client(base_url=server.base, timeout=30) as http:
                while True:
                    after = [
                        http.post("/v1/models/movies/recommend", json={"user_id": f"u{k}"}).json()
                        for k in range(40)
                    ]
                    if {body["version"] for body in after} == {"2"}:
                        break
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
        finally:
            controller.close()
    decisions = history(registry.engine, "movies")
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("shadow", None),
        ("canary", 0), ("promote", None),
    ], [(d.action, d.rule) for d in decisions]  # fmt: skip
    gate = registry.get("movies", 2).gate_report
    check = gate["checks"][0]
    assert gate["passed"]
    assert check["name"] == "offline:ndcg@10"
    assert check["value"] >= check["champion"]
    assert registry.aliases("movies") == {"champion": 2}
    assert registry.traffic.get("movies").policy is None
    assert answers
    assert {status for status, _ in answers} == {200}
    assert {body["version"] for _, body in answers} == {"1", "2"}  # the canary answered
    assert {body["version"] for body in after} == {"2"}


class Reregister:
    """A retrainer that registers ``rec`` again as a new version with a passed gate."""

    def __init__(self, registry: Registry, rec: Recommender) -> None:
        self.registry, self.rec = registry, rec

    def retrain(self, model: str, start: Any, end: Any) -> Trained:
        report = {"passed": True, "checks": [{"name": "offline:ndcg@10", "passed": True}]}
        mv = register_recommender(self.registry, model, self.rec, gate_report=report)
        return Trained(mv.version, report)


def with_plan(settings: Settings, plan: dict[str, Any]) -> Settings:
    policy = settings.loop["movies"].model_validate(
        {"lookback": "90d", "triggers": {"drift_features": 0}, "rollout": plan}
    )
    return settings.model_copy(update={"loop": {"movies": policy}})


def test_a_recommender_that_raises_on_every_call_is_rolled_back_with_no_failed_response(
    loaded: tuple[Settings, Registry, Recommender],
) -> None:
    settings, registry, rec = loaded
    served, sessions = split_recommenders(registry, ["movies"], settings)[1:]
    assert served[0].load_target is not None
    load_target = served[0].load_target

    def breaking(target: str) -> Recommender:
        loaded = load_target(target)
        return broken(loaded, "2") if loaded.version == "2" else loaded

    served = [replace(served[0], load_target=breaking)]
    settings = with_plan(settings, {**PLAN, "shadow_requests": 0})
    retrainer = Reregister(registry, rec)
    controller = LoopController.from_settings(settings, holder="loop-test", retrainer=retrainer)
    with Served(settings, registry, served, sessions) as server:
        try:
            answers = run_loop(controller, registry, server.base)
        finally:
            controller.close()
    decisions = history(registry.engine, "movies")
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("canary", 0),
        ("rollback", None),
    ], [(d.action, d.rule) for d in decisions]  # fmt: skip
    rollback = decisions[-1]
    assert rollback.numbers["comparison"]["challenger"]["error_rate"] > 0.9
    assert answers
    assert {status for status, _ in answers} == {200}
    assert {body["version"] for _, body in answers} == {"1"}
    assert any(body["route"] == "recommend:champion" for _, body in answers)
    assert registry.aliases("movies") == {"champion": 1}
    assert registry.traffic.get("movies").policy is None


def canary_with_clicks(
    loaded: tuple[Settings, Registry, Recommender], clicks: dict[str, int]
) -> tuple[list[Any], list[tuple[int, Any]]]:
    """A canary of version 2 (no shadow) whose lists users click as ``clicks`` says per
    version; the step cannot pass before 50 labelled lists per arm, so the clicks decide
    it. The loop's decisions and the answers seen."""
    settings, registry, rec = loaded
    served, sessions = split_recommenders(registry, ["movies"], settings)[1:]
    settings = with_plan(settings, {**PLAN, "shadow_requests": 0, "min_labelled": 50})
    retrainer = Reregister(registry, rec)
    controller = LoopController.from_settings(settings, holder="loop-test", retrainer=retrainer)
    with Served(settings, registry, served, sessions) as server:
        try:
            answers = run_loop(controller, registry, server.base, clicks=clicks)
        finally:
            controller.close()
    return history(registry.engine, "movies"), answers


def test_a_recommender_canary_users_never_click_is_rolled_back_on_its_hit_rate(
    loaded: tuple[Settings, Registry, Recommender],
) -> None:
    registry = loaded[1]
    decisions, answers = canary_with_clicks(loaded, {"1": 1, "2": 0})
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("canary", 0),
        ("rollback", None),
    ], [(d.action, d.rule) for d in decisions]  # fmt: skip
    rollback = decisions[-1]
    assert rollback.rule.startswith("performance-drop"), rollback.rule
    assert "hit rate" in rollback.rule
    comparison = rollback.numbers["comparison"]
    assert comparison["task"] == "recommendation"
    assert comparison["champion"]["metrics"]["hit_rate"] == 1.0
    assert comparison["challenger"]["metrics"]["hit_rate"] == 0.0
    assert comparison["challenger"]["errors"] == 0
    assert {status for status, _ in answers} == {200}
    assert {body["version"] for _, body in answers} == {"1", "2"}  # the canary answered
    assert registry.aliases("movies") == {"champion": 1}
    assert registry.traffic.get("movies").policy is None


def test_a_recommender_canary_clicked_as_often_is_promoted_once_its_hit_rate_is_not_worse(
    loaded: tuple[Settings, Registry, Recommender],
) -> None:
    registry = loaded[1]
    decisions, answers = canary_with_clicks(loaded, {"1": 1, "2": 1})
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("canary", 0),
        ("promote", None),
    ], [(d.action, d.rule) for d in decisions]  # fmt: skip
    comparison = decisions[-1].numbers["comparison"]
    assert comparison["tests"]["hit_rate"]["decision"] == "challenger_not_worse"
    assert comparison["challenger"]["labelled"] >= 50
    assert {status for status, _ in answers} == {200}
    assert registry.aliases("movies") == {"champion": 2}
