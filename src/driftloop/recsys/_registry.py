"""Registering a recommender as a model version (with its index) and loading it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from driftloop.core.config import RecsysConfig
from driftloop.core.errors import InvalidParameterError
from driftloop.recsys._bundle import from_artifacts, to_artifacts
from driftloop.recsys._recommender import Recommender
from driftloop.registry import FeatureSpec, ModelVersion, Registry, Signature

__all__ = ["SIGNATURE", "load_recommender", "register_recommender"]

SIGNATURE = Signature(
    features=(FeatureSpec("user_id", dtype="object", kind="category"),),
    task="recommendation",
    id="user_id",
)
"""What a recommender's request carries (its answer is a list, not a score)."""


def register_recommender(
    registry: Registry,
    name: str,
    rec: Recommender,
    *,
    metrics: Mapping[str, Any] | None = None,
    alias: str | None = None,
    **details: Any,
) -> ModelVersion:
    """Register ``rec`` as the next version of ``name``: its model bundle, its own index
    (stored with its sha256, which the bundle records too) and its ranker."""
    files = to_artifacts(replace(rec, name=name))
    params = {"items": len(rec.items), "users": len(rec.encoding.users), "dim": rec.model.dim}
    return registry.register_files(
        name,
        "recommender",
        files,
        signature=SIGNATURE,
        params={**params, **dict(details.pop("params", {}))},
        metrics=metrics,
        alias=alias,
        **details,
    )


def load_recommender(
    registry: Registry,
    name: str,
    version: int | str | None = None,
    *,
    config: RecsysConfig | None = None,
) -> Recommender:
    """A version (a number, an alias such as ``champion``, or the latest) with its own
    index, every artifact checked against its sha256. ``config`` replaces the fallback
    thresholds and rules it was trained with (the project's ``[recsys]``)."""
    if isinstance(version, str) and not version.isdigit():
        mv = registry.resolve(name, version)
    else:
        mv = registry.get(name, int(version) if version is not None else None)
    if mv.flavor != "recommender":
        raise InvalidParameterError(
            f"Model '{name}' version {mv.version} is a {mv.flavor} model, not a recommender."
        )
    files = {role: registry.store.get(digest) for role, digest in mv.artifacts.items()}
    rec = from_artifacts(files, name, str(mv.version))
    return replace(rec, config=config) if config is not None else rec
