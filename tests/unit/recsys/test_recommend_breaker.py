"""A recommender's arms have circuit breakers, as predict arms do: a challenger that keeps
raising is cut off and the champion answers its users (never a 5xx), it is tried again
after the cooldown, a failing shadow opens nothing, and a champion that cannot answer
gives a clear 503. The breakers' clock is stepped by hand: no test waits on wall time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import BreakerConfig, ServingConfig, TrafficPolicy
from driftloop.recsys import Recommendation, Recommender, RecommendRequest, train_recommender
from driftloop.serving import InMemoryModelSource, RecommenderService, ServedRecommender, create_app
from recsys_world import FAST, world

BREAKER = BreakerConfig(min_requests=5, max_error_rate=0.5, open_s=60.0, probes=1)
USERS = [f"new-{k}" for k in range(60)]


@dataclass
class FlakyRecommender(Recommender):
    """A version that raises while ``failing``, counting the requests it was asked."""

    failing: bool = True
    asked: int = 0

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Recommendation]:
        self.asked += len(requests)
        if self.failing:
            raise RuntimeError("this version's index is broken")
        return super().recommend_many(requests)


def flaky(rec: Recommender, version: str) -> FlakyRecommender:
    values = {f.name: getattr(rec, f.name) for f in fields(rec)}
    return FlakyRecommender(**{**values, "version": version})


@pytest.fixture(scope="module")
def champion() -> Recommender:
    frame, catalog = world()
    return replace(train_recommender(frame, catalog, config=FAST), version="1")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


class Clock:
    """The breakers' clock: seconds, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def serve(
    aliases: dict[str, Recommender],
    audit: SqliteAuditLog,
    clock: Clock,
    traffic: TrafficPolicy | None = None,
) -> TestClient:
    by_version = {r.version: r for r in aliases.values()}

    def load_target(target: str) -> Recommender:
        return by_version[target] if target.isdigit() else aliases[target]

    served = ServedRecommender(
        "movies",
        lambda: aliases["champion"],
        load_target=load_target,
        resolve=lambda target: load_target(target).version,
        traffic=traffic,
    )
    app = create_app(
        [],
        InMemoryModelSource(),
        settings=ServingConfig(breaker=BREAKER),
        audit=audit,
        refresh_s=0,
        recommenders=[served],
    )
    app.state.recommenders.clock = clock
    return TestClient(app)


def ask_all(client: TestClient) -> list[dict[str, Any]]:
    answers = []
    for user in USERS:
        response = client.post("/v1/models/movies/recommend", json={"user_id": user, "n": 5})
        assert response.status_code == 200, response.text  # never a 5xx for the client
        answers.append(response.json())
    return answers


def service_of(client: TestClient) -> RecommenderService:
    service: RecommenderService = client.app.state.recommenders.service("movies")  # type: ignore[attr-defined]
    return service


def test_a_challenger_that_keeps_raising_is_cut_off_and_the_champion_answers_its_users(
    champion: Recommender, audit: SqliteAuditLog
) -> None:
    challenger = flaky(champion, "2")
    policy = TrafficPolicy(arms={"champion": 50, "challenger": 50})
    aliases = {"champion": champion, "challenger": challenger}
    with serve(aliases, audit, Clock(), policy) as client:
        answers = ask_all(client)
        arms = service_of(client).arms.describe()["arms"]
        metrics = client.get("/metrics").text
        ready = client.get("/readyz").json()
    assert {a["version"] for a in answers} == {"1"}
    assert 'driftloop_breaker_state{model="movies",target="2"} 2.0' in metrics
    assert 'driftloop_breaker_state{model="movies",target="1"} 0.0' in metrics
    assert ready["degraded"] == ["movies@2: breaker open"]
    passed_on = [a for a in answers if a["route"] == "recommend:champion"]
    assert len(passed_on) >= 10  # the challenger's share of 60 users (binomial(60, 0.5))
    # asked until min_requests failed, then never again while open
    assert challenger.asked == BREAKER.min_requests
    by_name = {arm["name"]: arm for arm in arms}
    assert by_name["challenger"]["breaker"] == "open"
    assert by_name["challenger"]["failed"] == BREAKER.min_requests
    assert by_name["challenger"]["refused"] == len(passed_on) - BREAKER.min_requests
    assert by_name["champion"]["breaker"] == "closed"
    for answer in passed_on:
        record = audit.get(answer["id"])  # the version that answered, not the one picked
        assert (record.version, record.route) == ("1", "recommend:champion")


def test_the_breaker_lets_the_challenger_back_after_its_cooldown_once_it_recovers(
    champion: Recommender, audit: SqliteAuditLog
) -> None:
    challenger = flaky(champion, "2")
    policy = TrafficPolicy(arms={"champion": 50, "challenger": 50})
    clock = Clock()
    aliases = {"champion": champion, "challenger": challenger}
    with serve(aliases, audit, clock, policy) as client:
        first = ask_all(client)
        challenger.failing = False  # fixed, but its breaker is still open
        clock.now += BREAKER.open_s - 1
        still = ask_all(client)
        asked = challenger.asked
        clock.now += 2  # past the cooldown: one probe goes through and closes it
        after = ask_all(client)
        arms = {arm["name"]: arm for arm in service_of(client).arms.describe()["arms"]}
    challengers = {a["user_id"] for a in first if a["route"] == "recommend:champion"}
    assert asked == BREAKER.min_requests, "an open breaker is not probed before its cooldown"
    assert {a["version"] for a in still} == {"1"}
    for answer in after:
        if answer["user_id"] in challengers:
            assert (answer["version"], answer["route"]) == ("2", "recommend")
        else:
            assert (answer["version"], answer["route"]) == ("1", "recommend")
    assert arms["challenger"]["breaker"] == "closed"
    assert audit.get(after[-1]["id"]).version == after[-1]["version"]


def test_a_failing_shadow_never_opens_a_breaker_nor_changes_an_answer(
    champion: Recommender, audit: SqliteAuditLog
) -> None:
    shadow = flaky(champion, "2")
    policy = TrafficPolicy(arms={"champion": 100}, shadow="challenger", shadow_sample=1.0)
    with serve({"champion": champion, "challenger": shadow}, audit, Clock(), policy) as client:
        answers = ask_all(client)
        service = service_of(client)
    # the server's stop waited for every copy: each one reached the failing shadow
    assert service.shadow.failed == len(USERS)
    assert shadow.asked == len(USERS)
    assert {(a["version"], a["route"]) for a in answers} == {("1", "recommend")}
    assert {b.state for b in service.arms.breakers.values()} == {"closed"}
    assert service.arms.failed["2"] == 0
    assert service.fell_back == 0


def test_a_champion_that_raises_with_no_other_arm_answers_a_clear_503_never_a_500(
    champion: Recommender, audit: SqliteAuditLog
) -> None:
    broken = flaky(champion, "1")
    with serve({"champion": broken}, audit, Clock()) as client:
        responses = [
            client.post("/v1/models/movies/recommend", json={"user_id": user, "n": 5})
            for user in USERS[:10]
        ]
    assert [r.status_code for r in responses] == [503] * 10
    errors = [r.json()["error"] for r in responses]
    assert {e["code"] for e in errors} == {"unavailable"}
    first, last = errors[0]["message"], errors[-1]["message"]
    assert "Recommender 'movies' could not answer: version 1" in first
    assert "failed (RuntimeError)" in first
    assert "circuit breaker open" in last  # past min_requests it is not called at all
    assert broken.asked == BREAKER.min_requests
