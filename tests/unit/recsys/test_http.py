from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import ServingConfig
from driftloop.features import SqliteOnlineStore
from driftloop.recsys import Recommender, train_recommender
from driftloop.registry import KeyStore, Registry, Signature, artifact_store_from_url
from driftloop.serving import InMemoryModelSource, ServedRecommender, create_app
from recsys_world import FAST, world


@pytest.fixture(scope="module")
def rec() -> Recommender:
    frame, catalog = world()
    return train_recommender(frame, catalog, config=FAST)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


@pytest.fixture
def client(rec: Recommender, audit: SqliteAuditLog, tmp_path: Path) -> Iterator[TestClient]:
    sessions = SqliteOnlineStore(tmp_path / "online.db")
    app = create_app(
        [],
        InMemoryModelSource(),
        audit=audit,
        refresh_s=0,
        recommenders=[ServedRecommender("movies", lambda: replace(rec, version="1"))],
        sessions=sessions,
    )
    with TestClient(app) as c:
        yield c
    sessions.close()


def test_recommend_answers_the_list_its_level_and_version_and_audits_them(
    client: TestClient, audit: SqliteAuditLog
) -> None:
    response = client.post("/v1/models/movies/recommend", json={"user_id": "u1", "n": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["level"] == "personalized"
    assert body["version"] == "1"
    assert len(body["items"]) == 5
    record = audit.get(body["id"])
    assert record.model == "movies"
    assert record.version == "1"
    assert record.decision == "personalized"
    assert record.outputs is not None
    assert record.outputs["items"] == [i["item_id"] for i in body["items"]]


def test_the_openapi_document_describes_the_recommend_and_interaction_paths(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    recommend = spec["paths"]["/v1/models/{name}/recommend"]["post"]
    assert recommend["parameters"][0]["schema"]["enum"] == ["movies"]
    request = spec["components"]["schemas"]["RecommendRequest"]
    assert request["required"] == ["user_id"]
    assert request["properties"]["n"]["maximum"] == 100  # the server's MAX_N
    assert "/v1/models/{name}/interactions" in spec["paths"]
    too_many = client.post("/v1/models/movies/recommend", json={"user_id": "u1", "n": 101})
    assert too_many.status_code == 422  # the document and the server agree on n's bound


def test_an_unknown_user_is_cold_start_not_an_error(client: TestClient) -> None:
    response = client.post("/v1/models/movies/recommend", json={"user_id": 987654})
    assert response.status_code == 200
    assert response.json()["level"] == "popular"
    assert len(response.json()["items"]) == 10
    cohort = client.post(
        "/v1/models/movies/recommend",
        json={"user_id": "nobody", "context": {"gender": "F", "age_group": "25-34"}},
    )
    assert cohort.json()["level"] == "cohort"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "n": 0}, "n"),
        ({"user_id": "u1", "n": 101}, "n"),
        ({"user_id": "u1", "n": "ten"}, "n"),
        ({"user_id": "u1", "n": True}, "n"),
        ({"user_id": ["u1"]}, "user_id"),
        ({"n": 3}, "user_id"),
        ({"user_id": "u1", "context": "x"}, "context"),
        ({"user_id": "u1", "context": {"session": "i1"}}, "context.session"),
        ({"user_id": "u1", "context": {"gender": {"a": 1}}}, "context.gender"),
        ({"user_id": "u1", "limit": 3}, "limit"),
    ],
)
def test_bad_inputs_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/models/movies/recommend", json=body)
    assert response.status_code == 422, response.text
    assert f"'{field}'" in response.json()["error"]["message"]


def test_an_unknown_recommender_is_404(client: TestClient) -> None:
    response = client.post("/v1/models/nope/recommend", json={"user_id": "u1"})
    assert response.status_code == 404


def test_interactions_join_the_session_and_are_excluded_next_time(client: TestClient) -> None:
    first = client.post("/v1/models/movies/recommend", json={"user_id": "fresh", "n": 5})
    assert first.json()["level"] == "popular"
    top = first.json()["items"][0]["item_id"]
    recorded = client.post(
        "/v1/models/movies/interactions", json={"user_id": "fresh", "item_id": top}
    )
    assert recorded.status_code == 200
    second = client.post("/v1/models/movies/recommend", json={"user_id": "fresh", "n": 5})
    assert second.json()["level"] == "hybrid"
    assert top not in [i["item_id"] for i in second.json()["items"]]


def test_feedback_labels_a_recommendation(client: TestClient, audit: SqliteAuditLog) -> None:
    answer = client.post("/v1/models/movies/recommend", json={"user_id": "u2"}).json()
    response = client.post(
        "/v1/feedback", json={"labels": [{"prediction_id": answer["id"], "label": 1}]}
    )
    assert response.status_code == 200, response.text
    assert audit.get(answer["id"]).label == 1.0


def test_each_answer_comes_from_the_index_of_the_version_it_reports(
    rec: Recommender, audit: SqliteAuditLog
) -> None:
    """Version 2 has its own catalog (other item ids) and index; swapped under load,
    every answer's items belong to the version it names."""
    frame, catalog = world(seed=1)
    renamed = catalog.items.assign(item_id="v2-" + catalog.items["item_id"])
    frame = frame.assign(item_id="v2-" + frame["item_id"])
    second = train_recommender(
        frame, replace(catalog, items=renamed), config=replace(FAST, ranker_fraction=0.0)
    )
    versions = {"1": replace(rec, version="1"), "2": replace(second, version="2")}
    items = {v: set(r.items) for v, r in versions.items()}
    app = create_app(
        [],
        InMemoryModelSource(),
        audit=audit,
        refresh_s=0,
        recommenders=[ServedRecommender("movies", lambda: versions["1"])],
    )

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        answers: list[dict[str, Any]] = []
        async with app.router.lifespan_context(app):
            service = app.state.recommenders.service("movies")
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

                async def one(k: int) -> None:
                    body = {"user_id": f"u{k % 80}", "n": 5}
                    r = await http.post("/v1/models/movies/recommend", json=body)
                    answers.append(r.json())

                # swapped once the first answers are back, with the rest of the first
                # 150 requests in flight; 150 more are sent after the swap
                first = [asyncio.create_task(one(k)) for k in range(150)]
                while not answers:
                    await asyncio.sleep(0)
                service.swap(versions["2"])
                await asyncio.gather(*first, *(one(k) for k in range(150, 300)))
        return answers

    answers = asyncio.run(run())
    seen = {a["version"] for a in answers}
    assert seen == {"1", "2"}, "the swap happened under load"
    for answer in answers:
        assert {i["item_id"] for i in answer["items"]} <= items[answer["version"]]


def test_under_api_keys_a_recommender_answers_its_tenant_only_and_audits_under_it(
    rec: Recommender, audit: SqliteAuditLog, tmp_path: Path
) -> None:
    keys = KeyStore.at(f"sqlite:///{tmp_path / 'registry.db'}")
    registry = Registry(keys.engine, artifact_store_from_url(str(tmp_path / "artifacts")))
    signature = Signature.from_frame(pd.DataFrame({"x": [1.0]}))
    registry.register_files("movies", "sklearn", {"model": b"m"}, signature=signature, tenant="b")
    ours = {"Authorization": f"Bearer {keys.create('b', ['predict'], who='t')[1]}"}
    theirs = {"Authorization": f"Bearer {keys.create('a', ['predict'], who='t')[1]}"}
    app = create_app(
        [],
        InMemoryModelSource(),
        settings=ServingConfig(auth="keys"),
        audit=audit,
        keys=keys,
        refresh_s=0,
        recommenders=[ServedRecommender("movies", lambda: replace(rec, version="1"))],
    )
    body = {"user_id": "u1", "n": 3}
    with TestClient(app) as client:
        assert (
            client.post("/v1/models/movies/recommend", json=body, headers=theirs).status_code == 404
        )
        answer = client.post("/v1/models/movies/recommend", json=body, headers=ours)
    keys.close()
    assert answer.status_code == 200, answer.text
    assert audit.get(answer.json()["id"]).tenant == "b"


def test_a_shadow_version_answers_off_the_response_path_then_is_swapped_in(
    rec: Recommender, audit: SqliteAuditLog
) -> None:
    versions = {"1": replace(rec, version="1"), "2": replace(rec, version="2")}
    served = {"champion": "1"}
    app = create_app(
        [],
        InMemoryModelSource(),
        audit=audit,
        refresh_s=0,
        recommenders=[
            ServedRecommender(
                "movies",
                lambda: versions[served["champion"]],
                shadow=lambda: versions["2"] if served["champion"] == "1" else None,
            )
        ],
    )
    with TestClient(app) as client:
        answers = [
            client.post("/v1/models/movies/recommend", json={"user_id": f"u{k}"}).json()
            for k in range(5)
        ]
        assert {a["version"] for a in answers} == {"1"}
        served["champion"] = "2"  # the shadowed version is promoted
        app.state.recommenders.service("movies").swap(versions["2"])
        after = client.post("/v1/models/movies/recommend", json={"user_id": "u1"}).json()
        assert after["version"] == "2"
    now = pd.Timestamp.now(tz="UTC")
    rows = audit.window(now - pd.Timedelta(hours=1), now + pd.Timedelta(minutes=1), model="movies")
    shadow = rows[rows["route"] == "shadow"]
    assert len(shadow) == 5
    assert set(shadow["version"]) == {"2"}
    assert set(rows.loc[rows["route"] == "recommend", "version"]) == {"1", "2"}
