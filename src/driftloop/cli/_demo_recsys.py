"""``driftloop demo --story recsys``: the second application on the same parts.

MovieLens-100k (from the recbole wheel) split by time; a two-tower model, its index and
a LightGBM ranker trained on the past; judged on the future against popularity; registered
as a model version (index inside, with its sha256); served by ``driftloop serve``'s app in
process to warm users, cold users and strangers; every list audited; the served lists'
coverage and diversity compared with the offline ones (monitoring); then the loop
retrains it on more of the ratings, shadows and canaries the new version with the users'
simulated clicks as feedback, and promotes it or rolls it back (``_demo_recsys_rollout``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table

from driftloop.cli._console import console, progress_bar
from driftloop.cli._demo_recsys_rollout import ROLLOUT_TOML, run_rollout, write_loop_data
from driftloop.core.config import CONFIG_FILENAME, load_settings
from driftloop.data import movielens_100k
from driftloop.monitoring import ListStats, list_drift
from driftloop.recsys import (
    Catalog,
    Popularity,
    RecommendRequest,
    coverage,
    diversity,
    evaluate_lists,
    segments,
    time_split,
)
from driftloop.registry import Registry

__all__ = ["RECSYS_TOML", "run_recsys_demo"]

MODEL = "movies"
RECSYS_TOML = (
    """\
[project]
name = "driftloop-recsys-demo"

[recsys.rules]
exclude_seen = true
max_per_genre = 4
freshness_boost = 0.05

[recsys.fallback]
warm_min = 6
cohort_min = 50
"""
    + ROLLOUT_TOML
)


def _table(title: str, results: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("segment")
    for name in results:
        table.add_column(f"{name} NDCG@10", justify="right")
        table.add_column(f"{name} Recall@10", justify="right")
    first = next(iter(results.values()))
    for segment in first:
        cells = []
        for result in results.values():
            cells += [f"{result[segment]['ndcg@10']:.3f}", f"{result[segment]['recall@10']:.3f}"]
        table.add_row(f"{segment} ({int(first[segment]['users'])} users)", *cells)
    return table


def run_recsys_demo(folder: Path, seed: int) -> dict[str, Any]:
    """Run the story in ``folder`` (already fresh); returns what it measured."""
    from driftloop.cli._serve import build_app
    from driftloop.recsys import TowerConfig, TrainConfig, register_recommender, train_recommender

    started = time.perf_counter()
    console.rule("[bold]1. Data[/]: MovieLens-100k, split by time")
    ml = movielens_100k()
    catalog = Catalog(ml.users, ml.items, ml.user_features, ml.item_tags, ml.item_year, ml.cohort)
    split = time_split(ml.ratings, fraction=0.8)
    segs = segments(split)
    console.print(
        f"{len(split.train):,} ratings before {split.cutoff:%Y-%m-%d %H:%M} to learn from, "
        f"{len(split.test):,} after to judge on: {len(segs['warm'])} warm users, "
        f"{len(segs['cold'])} cold users (<= 5 ratings), {len(segs['cold_items'])} users "
        "meeting films no one rated before."
    )
    (folder / CONFIG_FILENAME).write_text(RECSYS_TOML)
    write_loop_data(folder, ml.ratings, catalog)
    env = {"DRIFTLOOP_CONFIG": str(folder / CONFIG_FILENAME)}
    settings = load_settings(environ=env)

    console.rule("[bold]2. Train[/]: two towers, their index, a lambdarank ranker")
    config = TrainConfig(
        tower=TowerConfig(dim=48, epochs=4, seed=seed), ranker_candidates=80, ranker_rounds=80
    )
    steps = ["ranker", "towers", "index"]
    with progress_bar() as bar:
        task = bar.add_task("training", total=len(steps) + 1)
        rec = train_recommender(
            split.train,
            catalog,
            name=MODEL,
            config=replace(config, recsys=settings.recsys),
            progress=lambda step: bar.update(task, advance=1, description=f"training: {step}"),
        )
    tags = dict(zip(catalog.items["item_id"], catalog.items["genres"], strict=True))
    popularity = Popularity.fit(split.train, rec.items)
    history = split.train.groupby("user_id")["item_id"].agg(set).to_dict()

    def ours(users: Any, k: int) -> dict[str, list[str]]:
        answers = rec.recommend_many([RecommendRequest(u, k) for u in users])
        return {a.user_id: list(a.items) for a in answers}

    def popular(users: Any, k: int) -> dict[str, list[str]]:
        top = popularity.top(k + 400)
        return {u: [i for i in top if i not in history.get(u, ())][:k] for u in users}

    size = len(rec.items)
    results = {
        "ours": evaluate_lists(ours, split, segs, catalog_size=size, tags=tags),
        "popularity": evaluate_lists(popular, split, segs, catalog_size=size, tags=tags),
    }
    console.print(_table("Offline, on the future (time split)", results))

    console.rule("[bold]3. Register[/]: model, index (sha256) and ranker as one version")
    registry = Registry.from_settings(settings)
    metrics = {f"{seg}_{m}": v for seg, r in results["ours"].items() for m, v in r.items()}
    mv = register_recommender(
        registry,
        MODEL,
        rec,
        metrics=metrics,
        alias="champion",
        params={"train_end": split.cutoff.isoformat()},
    )
    console.print(f"{mv.ref}: artifacts {', '.join(sorted(mv.artifacts))}; alias champion.")

    console.rule("[bold]4. Serve[/]: POST /v1/models/movies/recommend (driftloop serve's app)")
    from starlette.testclient import TestClient

    users = sorted(segs["warm"])[:60] + sorted(segs["cold"])[:60]
    levels: dict[str, int] = {}
    sample: dict[str, Any] = {}
    with TestClient(build_app(env)) as client:
        for user in users:
            body = client.post(f"/v1/models/{MODEL}/recommend", json={"user_id": user}).json()
            levels[body["level"]] = levels.get(body["level"], 0) + 1
        stranger = {"user_id": "someone-new", "context": {"session": ["50", "181", "172"]}}
        sample = client.post(f"/v1/models/{MODEL}/recommend", json=stranger).json()
        levels[sample["level"]] = levels.get(sample["level"], 0) + 1
        unknown = client.post(f"/v1/models/{MODEL}/recommend", json={"user_id": "nobody"})
        levels[unknown.json()["level"]] = levels.get(unknown.json()["level"], 0) + 1
        bad = client.post(f"/v1/models/{MODEL}/recommend", json={"user_id": "1", "n": 0})
    titles = dict(zip(catalog.items["item_id"], catalog.items["title"], strict=True))
    console.print(
        f"{sum(levels.values())} lists served by level: "
        + ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))
        + f". A stranger who just watched Star Wars, Return of the Jedi and The Empire "
        f"Strikes Back ({sample['level']}): "
        + "; ".join(titles.get(i["item_id"], i["item_id"]) for i in sample["items"][:5])
        + f". n=0 is refused: {bad.status_code} {bad.json()['error']['message']}"
    )

    console.rule("[bold]5. Audit and monitor[/]: every list, its level and version")
    from driftloop.audit import open_audit_log

    audit = open_audit_log(settings.audit.url, root=settings.root)
    now = datetime.now(UTC)
    frame = audit.window(now - timedelta(hours=1), now + timedelta(minutes=1), model=MODEL)
    audit.close()
    offline_lists = list(ours(users, 10).values())
    reference = ListStats(
        now, now, len(offline_lists), coverage(offline_lists, size),
        diversity(offline_lists, tags), {},
    )  # fmt: skip
    drift = list_drift(
        frame, catalog_size=size, tags=tags, every=timedelta(hours=1), reference=reference
    )
    served = drift.windows[0]
    drifted = ", ".join(d[1] for d in drift.drifted())
    console.print(
        f"{len(frame)} audited lists (version {', '.join(sorted(set(frame['version'])))}). "
        f"Served coverage {served.coverage:.3f} vs offline {reference.coverage:.3f}, "
        f"diversity {served.diversity:.3f} vs {reference.diversity:.3f}: "
        + (f"drift in {drifted}" if drifted else "no drift")
        + f" (tolerance {drift.tolerance:.0%})."
    )

    console.rule("[bold]6. Roll out a new version[/]: retrain, gate, shadow, canary, decide")
    console.print(
        "The loop retrains on all but the latest 10% of the ratings and gates on them "
        "(NDCG@10 against the champion); users then ask for lists, and a list counts as "
        "clicked (feedback 1, else 0) when it holds a film its user rated in that latest 10%."
    )
    try:
        rollout = run_rollout(settings, registry, lambda: build_app(env), ml.ratings, config)
    finally:
        registry.close()
    seconds = time.perf_counter() - started
    console.print(f"[bold]Done[/] in {seconds:.0f} s; project in {folder}.")
    return {
        "results": results,
        "levels": levels,
        "audited": len(frame),
        "rollout": rollout,
        "seconds": seconds,
    }
