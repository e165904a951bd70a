from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from driftloop.cli._serve import build_app
from driftloop.core.config import load_settings
from driftloop.recsys import register_recommender, train_recommender
from driftloop.registry import Registry
from recsys_world import FAST, world


def test_driftloop_serve_answers_the_projects_recommenders_beside_its_models(
    tmp_path: Path,
) -> None:
    (tmp_path / "driftloop.toml").write_text(
        '[project]\nname = "movies"\n\n[recsys.rules]\nmax_per_genre = 2\n'
    )
    env = {"DRIFTLOOP_CONFIG": str(tmp_path / "driftloop.toml")}
    settings = load_settings(environ=env)
    registry = Registry.from_settings(settings)
    frame, catalog = world()
    rec = train_recommender(frame, catalog, config=FAST)
    register_recommender(registry, "movies", rec, alias="champion")
    registry.close()
    with TestClient(build_app(env)) as client:
        assert client.get("/readyz").status_code == 200
        answer = client.post("/v1/models/movies/recommend", json={"user_id": "u3", "n": 6})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["level"], body["version"]) == ("personalized", "1")
        # the project's [recsys.rules] apply: at most 2 items of a genre in the list
        genres = [
            g for i in body["items"] for g in rec.snapshot.item_tags[rec.items.index(i["item_id"])]
        ]
        assert max(genres.count(g) for g in set(genres)) <= 2
