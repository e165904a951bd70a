"""``driftloop serve`` and recommenders: registered versions of the ``recommender``
flavor are answered at ``POST /v1/models/{name}/recommend`` (their alias followed as
the tabular models' are, and their traffic policy: ``[serving.traffic.<name>]``, then
the run-time one the loop or ``driftloop traffic set`` stores), with the project's
``[recsys]`` rules and the users' sessions in the project's online store."""

from __future__ import annotations

from functools import partial

from driftloop.core.config import Settings
from driftloop.core.errors import NotFoundError
from driftloop.features import OnlineStore, online_store_from_url
from driftloop.registry import Registry
from driftloop.serving import ServedRecommender

__all__ = ["split_recommenders"]


def _is_recommender(registry: Registry, name: str) -> bool:
    try:
        return registry.get(name).flavor == "recommender"
    except NotFoundError:
        return False


def _version_of(registry: Registry, name: str, target: str) -> str:
    """The version number an alias (or a version number) names now."""
    if target.isdigit():
        return str(registry.get(name, int(target)).version)
    return str(registry.resolve(name, target).version)


def split_recommenders(
    registry: Registry, specs: list[str], settings: Settings
) -> tuple[list[str], list[ServedRecommender], OnlineStore | None]:
    """The tabular model specs, the recommenders (``name[@alias]``, default champion)
    and the online store for their sessions (None when there is no recommender)."""
    tabular: list[str] = []
    served: list[ServedRecommender] = []
    for spec in specs:
        name, _, alias = spec.rpartition("=")[2].partition("@")
        if not _is_recommender(registry, name):
            tabular.append(spec)
            continue
        from driftloop.recsys import load_recommender  # needs the recsys extra

        alias = alias or "champion"
        load_target = partial(load_recommender, registry, name, config=settings.recsys)
        served.append(
            ServedRecommender(
                name,
                partial(load_target, alias),
                load_target=load_target,
                resolve=partial(_version_of, registry, name),
                traffic=settings.serving.traffic.get(name),
                alias=alias,
            )
        )
    if not served:
        return tabular, served, None
    return tabular, served, online_store_from_url(settings.features.online_store, settings.root)
