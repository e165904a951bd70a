"""Retraining a recommender for the loop, and judging it offline against the champion.

A recommender's data is named by ``[recsys.data.<model>]`` (interactions, users, items:
files or queries as ``[models.<name>] data`` is). :class:`RecommenderRetrainer` reads the
interactions of the rollout's window, keeps its latest ``holdout`` share out (never
earlier than the champion's own ``train_end``, so neither version has seen it), trains
the new version with :func:`~driftloop.recsys.train_recommender` on the rest, and asks
it to match or beat the champion's NDCG@10 on the held-out interactions (warm and cold
users together, :func:`~driftloop.recsys.evaluate_lists`). The version is registered
with that gate report either way (its ``train_end`` in its params), and takes the
``challenger`` alias only when it passed; the rollout (shadow, canary steps, promote or
roll back) is the one every model goes through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from driftloop.core.config import RecsysData, Settings
from driftloop.core.errors import InvalidParameterError
from driftloop.loop._retrain import Retrainer, Trained
from driftloop.registry import Registry
from driftloop.training import training_source

if TYPE_CHECKING:
    from driftloop.recsys import Catalog, Recommender, Split, TrainConfig

__all__ = ["FlavorRetrainer", "RecommenderRetrainer"]

METRIC = "ndcg@10"


class RecommenderRetrainer:
    """Retrains the recommenders of ``settings`` (module docs); ``config`` is how the
    towers, ranker and index train (the recsys defaults when None)."""

    def __init__(
        self, settings: Settings, registry: Registry, *, config: TrainConfig | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.config = config

    def data_of(self, model: str) -> RecsysData:
        data = self.settings.recsys.data.get(model)
        if data is None:
            raise InvalidParameterError(
                f"Recommender '{model}' has no [recsys.data.{model}] section: the loop "
                "cannot find its interactions, users and items to retrain on."
            )
        return data

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        from driftloop.recsys import (  # needs the recsys extra
            TrainConfig,
            load_recommender,
            register_recommender,
            time_split,
            train_recommender,
        )

        data = self.data_of(model)
        interactions = self._interactions(data, start, end)
        catalog = self._catalog(data)
        champion_version = self.registry.aliases(model).get("champion")
        champion = None
        split = time_split(interactions, fraction=1.0 - data.holdout)
        if champion_version is not None:
            champion = load_recommender(
                self.registry, model, champion_version, config=self.settings.recsys
            )
            seen_until = self.registry.get(model, champion_version).params.get("train_end")
            if seen_until is not None and pd.Timestamp(seen_until) > split.cutoff:
                split = time_split(interactions, cutoff=pd.Timestamp(seen_until))
        config = replace(self.config or TrainConfig(), recsys=self.settings.recsys)
        rec = train_recommender(split.train, catalog, name=model, config=config)
        scores = self._judge(split, catalog, rec, champion)
        ours, theirs = scores["challenger"], scores.get("champion")
        passed = bool(scores["users"]) and (theirs is None or ours[METRIC] >= theirs[METRIC])
        check = {
            "name": f"offline:{METRIC}",
            "passed": passed,
            "value": ours[METRIC],
            "champion": theirs[METRIC] if theirs is not None else None,
            "holdout_from": split.cutoff.isoformat(),
            "holdout_users": scores["users"],
        }
        report = {"passed": passed, "checks": [check]}
        metrics = {**ours, **({f"champion_{k}": v for k, v in theirs.items()} if theirs else {})}
        mv = register_recommender(
            self.registry,
            model,
            rec,
            metrics=metrics,
            gate_report=report,
            params={"train_start": pd.Timestamp(start).isoformat(), "train_end": str(split.cutoff)},
            alias="challenger" if passed else None,
            alias_reason=f"loop retraining: offline {METRIC} {ours[METRIC]:.4f}",
        )
        return Trained(mv.version, report, metrics)

    def _interactions(self, data: RecsysData, start: datetime, end: datetime) -> pd.DataFrame:
        source = training_source(data.interactions, root=self.settings.root)
        return source.window("timestamp", start=pd.Timestamp(start), end=pd.Timestamp(end))

    def _catalog(self, data: RecsysData) -> Catalog:
        from driftloop.recsys import Catalog

        root = self.settings.root
        users = training_source(data.users, root=root).window(None)
        items = training_source(data.items, root=root).window(None)
        if data.item_tags in items.columns:
            items[data.item_tags] = [_tags(v) for v in items[data.item_tags]]
        return Catalog(
            users.assign(user_id=users["user_id"].astype(str)) if "user_id" in users else users,
            items.assign(item_id=items["item_id"].astype(str)) if "item_id" in items else items,
            data.user_features,
            data.item_tags,
            data.item_year,
            data.cohort,
        )

    @staticmethod
    def _judge(
        split: Split, catalog: Catalog, rec: Recommender, champion: Recommender | None
    ) -> dict[str, Any]:
        """Both versions' metrics on the held-out interactions of warm and cold users."""
        from driftloop.recsys import RecommendRequest, evaluate_lists, segments

        segs = segments(split)
        judged = {"held_out": {**segs["warm"], **segs["cold"]}}
        tags = dict(zip(catalog.items["item_id"], catalog.items[catalog.item_tags], strict=True))
        out: dict[str, Any] = {"users": len(judged["held_out"])}
        for role, version in (("challenger", rec), ("champion", champion)):
            if version is None:
                continue

            def lists(users: Any, k: int, version: Recommender = version) -> dict[str, list[str]]:
                answers = version.recommend_many([RecommendRequest(u, k) for u in users])
                return {a.user_id: list(a.items) for a in answers}

            found = evaluate_lists(lists, split, judged, catalog_size=len(rec.items), tags=tags)[
                "held_out"
            ]
            out[role] = {k: float(v) for k, v in found.items()}
        return out


def _tags(value: Any) -> tuple[str, ...]:
    """An item's tags: a list as stored in Parquet, or text split on ``|`` (CSV)."""
    if isinstance(value, str):
        return tuple(t for t in value.split("|") if t)
    if value is None or (isinstance(value, float) and value != value):
        return ()
    return tuple(str(t) for t in value)


class FlavorRetrainer:
    """Retrains each model with the retrainer of its registered flavor (``by_flavor``),
    else ``default`` (the training pipeline)."""

    def __init__(
        self, registry: Registry, by_flavor: Mapping[str, Retrainer], default: Retrainer
    ) -> None:
        self.registry = registry
        self.by_flavor = dict(by_flavor)
        self.default = default

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        flavor = self.registry.get(model).flavor
        return self.by_flavor.get(flavor, self.default).retrain(model, start, end)
