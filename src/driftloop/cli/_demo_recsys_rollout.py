"""The recsys story's rollout: the loop retrains the recommender on more of MovieLens-100k
(:class:`~driftloop.loop.RecommenderRetrainer`, its offline NDCG@10 gate against the
champion on the latest ratings neither version saw), shadows the new version, canaries it
at 50% and promotes it or rolls it back (:class:`~driftloop.loop.ArmAnalysis`), while the
demo's users ask for lists and their feedback is sent to ``/v1/feedback``.

The feedback is simulated from the data, not invented: a list counts as clicked (label 1)
when it holds a film its user rated in the held-out ratings (the latest ``holdout`` share,
after both versions' training data), else 0; so the canary's per-arm hit rates compare the
two versions on what these users went on to watch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from starlette.testclient import TestClient

from driftloop.cli._console import console
from driftloop.core.config import Settings
from driftloop.loop import (
    Decision,
    LoopController,
    RecommenderRetrainer,
    request_retrain,
    rollout_state,
)
from driftloop.recsys import Catalog
from driftloop.registry import Registry

if TYPE_CHECKING:  # PyTorch loads only when the demo trains (the recsys extra)
    from driftloop.recsys import TrainConfig

__all__ = ["HOLDOUT", "ROLLOUT_TOML", "run_rollout", "write_loop_data"]

HOLDOUT = 0.1  # the latest share of the ratings: the gate's holdout and the clicks' source
ROLLOUT_TOML = f"""
[recsys.data.movies]                  # where the loop finds the data to retrain on
interactions = "data/ratings.parquet"
users = "data/users.parquet"
items = "data/items.parquet"
user_features = ["age_group", "gender", "occupation"]
item_tags = "genres"
item_year = "year"
cohort = ["age_group", "gender"]
holdout = {HOLDOUT}

[loop.movies]
lookback = "1600w"                    # MovieLens-100k is from 1997-98: all of it
triggers = {{drift_features = 0, performance_windows = 0}}

[loop.movies.rollout]
shadow_requests = 60
shadow_time = "0s"
canary_steps = [50]
dwell = "0s"
min_sample = 100
hit_label = 1                         # feedback: a click is 1, a list not clicked 0
"""
ROUND = 25  # lists asked for between two passes of the loop
PAUSE = 0.05  # seconds between rounds: the shadow's thread and the server's polls get a core
BOUND = 300.0  # seconds: a bound for a stuck rollout on a loaded machine


def write_loop_data(folder: Any, ratings: pd.DataFrame, catalog: Catalog) -> None:
    """The files ``[recsys.data.movies]`` names, for the loop's retraining."""
    data = folder / "data"
    data.mkdir(exist_ok=True)
    ratings.to_parquet(data / "ratings.parquet")
    catalog.users.to_parquet(data / "users.parquet")
    items = catalog.items.assign(genres=catalog.items["genres"].map(list))
    items.to_parquet(data / "items.parquet")


def _clicks(ratings: pd.DataFrame) -> dict[str, set[str]]:
    """Each user's films in the held-out ratings (the latest ``HOLDOUT`` share)."""
    cutoff = ratings["timestamp"].quantile(1.0 - HOLDOUT)
    later = ratings[ratings["timestamp"] >= cutoff]
    return {str(u): set(map(str, g)) for u, g in later.groupby("user_id")["item_id"]}


def _say(decision: Decision) -> None:
    rule = decision.rule if len(decision.rule) <= 150 else decision.rule[:147] + "..."
    version = f" v{decision.to_version}" if decision.to_version else ""
    console.print(f"  [bold]loop[/]: {decision.action}{version}: {rule}")


class _Traffic:
    """The demo's users asking for lists and clicking (or not), by stage."""

    def __init__(self, client: TestClient, clicks: Mapping[str, set[str]]) -> None:
        self.client, self.clicks = client, clicks
        self.users = sorted(clicks)
        self.asked = 0
        self.served: Counter[tuple[str, str, str]] = Counter()  # (stage, version, level)
        self.hits: Counter[tuple[str, str]] = Counter()  # (stage, version)

    def round(self, stage: str) -> None:
        labels = []
        for _ in range(ROUND):
            user = self.users[(self.asked * 7919) % len(self.users)]
            self.asked += 1
            body = self.client.post("/v1/models/movies/recommend", json={"user_id": user}).json()
            hit = bool(self.clicks[user] & {i["item_id"] for i in body["items"]})
            self.served[stage, body["version"], body["level"]] += 1
            self.hits[stage, body["version"]] += hit
            labels.append({"prediction_id": body["id"], "label": int(hit)})
        self.client.post("/v1/feedback", json={"labels": labels}).raise_for_status()

    def report(self, stage: str) -> str:
        versions = sorted({v for s, v, _ in self.served if s == stage})
        parts = []
        for version in versions:
            levels = {lv: n for (s, v, lv), n in self.served.items() if (s, v) == (stage, version)}
            total = sum(levels.values())
            by_level = ", ".join(f"{lv} {n}" for lv, n in sorted(levels.items()))
            rate = self.hits[stage, version] / total
            parts.append(f"v{version} answered {total} ({by_level}; clicked {rate:.0%})")
        return "; ".join(parts)


def run_rollout(
    settings: Settings,
    registry: Registry,
    app: Callable[[], Any],
    ratings: pd.DataFrame,
    config: TrainConfig,
) -> dict[str, Any]:
    """The loop's rollout of a retrained version while users ask and click; what
    happened (the decisions, the final aliases, who answered at each stage)."""
    retrainer = RecommenderRetrainer(settings, registry, config=config)
    controller = LoopController.from_settings(settings, holder="demo", retrainer=retrainer)
    request_retrain(registry, "movies", "a month of new ratings", who="demo")
    decisions: list[Decision] = []
    stage, stages = "before", []
    with TestClient(app()) as client:
        traffic = _Traffic(client, _clicks(ratings))
        deadline = time.monotonic() + BOUND
        try:
            while time.monotonic() < deadline:
                for decision in controller.run_once():
                    decisions.append(decision)
                    _say(decision)
                state = rollout_state(registry.engine, "movies")
                if state.resting and state.since is not None and decisions:
                    break
                now = "canary 50%" if state.state == "canary" else state.state
                if now != stage and now in ("shadow", "canary 50%"):
                    stage = now
                    stages.append(stage)
                if stage in ("shadow", "canary 50%"):
                    traffic.round(stage)
                time.sleep(PAUSE)
        finally:
            controller.close()
        state = rollout_state(registry.engine, "movies")
        if not state.resting:
            console.print(f"  The rollout did not end within {BOUND:.0f} s ({state.state}).")
        for name in stages:
            console.print(f"  {name}: {traffic.report(name)}{_copies(name, decisions)}")
        after = _after(client, traffic, registry)
    aliases = registry.aliases("movies")
    console.print(
        f"  After: champion is version {aliases.get('champion')}; "
        + (f"the server answers from version {', '.join(sorted(after))}." if after else "")
    )
    return {
        "decisions": [(d.action, d.to_version) for d in decisions],
        "aliases": aliases,
        "stages": stages,
        "after": sorted(after),
    }


def _copies(stage: str, decisions: Sequence[Decision]) -> str:
    """What the shadow scored, as the decision that ended the shadow saw it."""
    for decision in decisions:
        found = decision.numbers.get("comparison")
        if stage == "shadow" and isinstance(found, Mapping) and found.get("stage") == "shadow":
            coverage = found.get("coverage")
            share = f" (coverage {coverage:.0%})" if coverage is not None else ""
            version = found["challenger"]["version"]
            return f"; v{version} scored {found['paired']} copies off the response path{share}"
    return ""


def _after(client: TestClient, traffic: _Traffic, registry: Registry) -> set[str]:
    """The versions answering once the server followed the loop's last decision (it
    refreshes aliases and the policy within seconds)."""
    champion = str(registry.aliases("movies").get("champion"))
    deadline = time.monotonic() + 30.0
    seen: set[str] = set()
    users: Sequence[str] = traffic.users[:20]
    while time.monotonic() < deadline:
        seen = {
            client.post("/v1/models/movies/recommend", json={"user_id": u}).json()["version"]
            for u in users
        }
        if seen == {champion}:
            break
        time.sleep(0.25)
    return seen
