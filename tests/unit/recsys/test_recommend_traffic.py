"""A recommender in ``driftloop serve`` follows its traffic policy as a tabular model does:
a canary share and sticky A/B arms by user, a shadow off the response path, a broken arm
answered for by the champion; every arm a whole version with its own index."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import RolloutPlan, TrafficPolicy
from driftloop.loop import limits_of
from driftloop.monitoring import compare_arms
from driftloop.recsys import Recommender, RecommendRequest, train_recommender
from driftloop.registry import TrafficStore
from driftloop.serving import InMemoryModelSource, ServedRecommender, create_app, token_digest
from recsys_world import FAST, broken, world


@pytest.fixture(scope="module")
def versions() -> dict[str, Recommender]:
    """Version 1 and version 2, each with its own catalog (other item ids) and index."""
    frame, catalog = world()
    first = train_recommender(frame, catalog, config=FAST)
    frame2, catalog2 = world(seed=1)
    renamed = catalog2.items.assign(item_id="v2-" + catalog2.items["item_id"])
    second = train_recommender(
        frame2.assign(item_id="v2-" + frame2["item_id"]),
        replace(catalog2, items=renamed),
        config=replace(FAST, ranker_fraction=0.0),
    )
    return {"1": replace(first, version="1"), "2": replace(second, version="2")}


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


def served(
    aliases: dict[str, Recommender], traffic: TrafficPolicy | None = None
) -> ServedRecommender:
    """``movies`` with its aliases (``champion``, ``challenger``) as the registry would
    resolve them."""
    by_version = {r.version: r for r in aliases.values()}

    def load_target(target: str) -> Recommender:
        return by_version[target] if target.isdigit() else aliases[target]

    return ServedRecommender(
        "movies",
        lambda: aliases["champion"],
        load_target=load_target,
        resolve=lambda target: load_target(target).version,
        traffic=traffic,
    )


def app_of(
    recommender: ServedRecommender, audit: SqliteAuditLog, traffic: TrafficStore | None = None
) -> Any:
    return create_app(
        [],
        InMemoryModelSource(),
        audit=audit,
        refresh_s=0,
        recommenders=[recommender],
        traffic=traffic,
    )


def ask(client: TestClient, user: str) -> dict[str, Any]:
    response = client.post("/v1/models/movies/recommend", json={"user_id": user, "n": 5})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_30_percent_canary_sends_about_30_percent_of_users_and_each_user_stays(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    policy = TrafficPolicy(arms={"champion": 70, "challenger": 30})
    aliases = {"champion": versions["1"], "challenger": versions["2"]}
    items = {v: set(r.items) for v, r in versions.items()}
    users = [f"u{k}" for k in range(80)] + [f"new-{k}" for k in range(320)]
    with TestClient(app_of(served(aliases, policy), audit)) as client:
        first = {user: ask(client, user) for user in users}
        again = {user: ask(client, user) for user in users}
    on_challenger = sum(answer["version"] == "2" for answer in first.values())
    # binomial(400, 0.3): mean 120, sd 9.2; 4 sd either way
    assert 83 <= on_challenger <= 157, on_challenger
    for user in users:
        assert again[user]["version"] == first[user]["version"], f"{user} moved arm"
    for answer in [*first.values(), *again.values()]:
        assert answer["route"] == "recommend"
        assert {i["item_id"] for i in answer["items"]} <= items[answer["version"]]
        record = audit.get(answer["id"])
        assert (record.version, record.route) == (answer["version"], "recommend")


def test_a_shadow_that_raises_never_fails_or_alters_the_answer(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    champion = versions["1"]
    policy = TrafficPolicy(arms={"champion": 100}, shadow="challenger", shadow_sample=1.0)
    aliases = {"champion": champion, "challenger": broken(versions["2"], "2")}
    users = [f"u{k}" for k in range(40)]
    with TestClient(app_of(served(aliases, policy), audit)) as client:
        answers = [ask(client, user) for user in users]
        service = client.app.state.recommenders.service("movies")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while service.shadow.failed < len(users) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.shadow.failed == len(users), "every copy reached the shadow"
    expected = champion.recommend_many([RecommendRequest(u, n=5) for u in users])
    for answer, want in zip(answers, expected, strict=True):
        assert answer["version"] == "1"
        assert [i["item_id"] for i in answer["items"]] == list(want.items)
    frame = audit.window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert set(frame["route"]) == {"recommend"}, "a failed shadow writes no row"


def test_a_shadow_answers_copies_audited_beside_the_primary_and_never_returned(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    policy = TrafficPolicy(arms={"champion": 100}, shadow="challenger", shadow_sample=1.0)
    aliases = {"champion": versions["1"], "challenger": versions["2"]}
    users = [f"u{k}" for k in range(30)]
    since = datetime.now(UTC) - timedelta(seconds=1)
    with TestClient(app_of(served(aliases, policy), audit)) as client:
        answers = [ask(client, user) for user in users]
    assert {a["version"] for a in answers} == {"1"}
    items2 = set(versions["2"].items)
    for answer in answers:
        copy = audit.get(f"{answer['id']}:shadow")
        assert (copy.version, copy.route) == ("2", "shadow")
        assert copy.outputs is not None
        assert set(copy.outputs["items"]) <= items2
    plan = RolloutPlan()
    found = compare_arms(
        audit, "movies", 1, 2, since, datetime.now(UTC),
        limits=limits_of(plan, "shadow"), stage="shadow",
    )  # fmt: skip
    assert found.coverage == 1.0
    assert found.paired == len(users)


def test_a_broken_canary_arm_is_answered_by_the_champion_and_counted_as_its_errors(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    policy = TrafficPolicy(arms={"champion": 50, "challenger": 50})
    aliases = {"champion": versions["1"], "challenger": broken(versions["2"], "2")}
    users = [f"new-{k}" for k in range(200)]
    since = datetime.now(UTC) - timedelta(seconds=1)
    with TestClient(app_of(served(aliases, policy), audit)) as client:
        answers = [ask(client, user) for user in users]
    assert {a["version"] for a in answers} == {"1"}
    fell_back = [a for a in answers if a["route"] == "recommend:champion"]
    assert 60 <= len(fell_back) <= 140  # the challenger's half (binomial(200, 0.5))
    found = compare_arms(audit, "movies", 1, 2, since, datetime.now(UTC), stage="canary")
    assert found.challenger.errors == len(fell_back)
    assert found.challenger.requests == len(fell_back)
    assert found.champion.errors == 0


def test_a_stored_policy_change_reaches_the_server_without_a_failed_request(
    versions: dict[str, Recommender], audit: SqliteAuditLog, tmp_path: Path
) -> None:
    store = TrafficStore.at(f"sqlite:///{tmp_path / 'traffic.db'}")
    aliases = {"champion": versions["1"], "challenger": versions["2"]}
    users = [f"new-{k}" for k in range(60)]
    try:
        with TestClient(app_of(served(aliases), audit, store)) as client:
            assert {ask(client, u)["version"] for u in users} == {"1"}
            store.set("movies", {"arms": {"champion": 0, "challenger": 100}}, who="t", why="all")
            deadline = time.monotonic() + 30
            seen: set[str] = set()
            while time.monotonic() < deadline and seen != {"2"}:
                seen = {ask(client, u)["version"] for u in users}  # every one answered
            assert seen == {"2"}
            service = client.app.state.recommenders.service("movies")  # type: ignore[attr-defined]
            assert service.arms.traffic.source == "runtime"
            assert service.arms.traffic.changed_by == "t"
    finally:
        store.close()


def test_a_policy_naming_a_version_that_cannot_load_is_refused_and_the_old_one_stays(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    from driftloop.core.errors import InvalidParameterError
    from driftloop.serving._traffic import ActivePolicy

    aliases = {"champion": versions["1"]}
    with TestClient(app_of(served(aliases), audit)) as client:
        service = client.app.state.recommenders.service("movies")  # type: ignore[attr-defined]
        bad = ActivePolicy(TrafficPolicy(arms={"champion": 50, "challenger": 50}), "runtime", 1)
        with pytest.raises(InvalidParameterError, match="'challenger' cannot be loaded"):
            asyncio.run(service.arms.apply(bad))
        assert service.arms.router.arms == ("champion",)
        assert ask(client, "u1")["version"] == "1"


def test_the_admin_api_sets_a_recommenders_policy_with_the_token_only(
    versions: dict[str, Recommender], audit: SqliteAuditLog
) -> None:
    aliases = {"champion": versions["1"], "challenger": versions["2"]}
    app = create_app(
        [],
        InMemoryModelSource(),
        audit=audit,
        refresh_s=0,
        recommenders=[served(aliases)],
        admin_digest=token_digest("s3cret"),
    )
    admin = {"Authorization": "Bearer s3cret", "X-Driftloop-Actor": "ana"}
    canary = {"arms": {"champion": 0, "challenger": 100}, "reason": "try v2"}
    with TestClient(app) as client:
        url = "/v1/models/movies/traffic"
        assert client.put(url, json=canary).status_code == 401
        wrong = client.put(url, json=canary, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        assert ask(client, "u1")["version"] == "1"
        unknown = client.put(url, json={"arms": {"champion": 50, "nope": 50}}, headers=admin)
        assert unknown.status_code == 422, unknown.text
        assert "'nope' cannot be loaded" in unknown.json()["error"]["message"]
        response = client.put(url, json=canary, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["changed_by"] == "ana"
        assert body["sticky_key"] == "user_id"
        assert [(a["name"], a["version"], a["weight"]) for a in body["arms"]] == [
            ("challenger", "2", 100.0)
        ]
        assert ask(client, "u1")["version"] == "2"
        cleared = client.put(url, json={"clear": True}, headers=admin)
        assert cleared.json()["source"] == "config"
        assert ask(client, "u1")["version"] == "1"
        assert client.get(url, headers=admin).json()["arms"][0]["name"] == "champion"
