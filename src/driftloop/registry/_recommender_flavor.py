"""The ``recommender`` flavor: a recommender's artifacts (model bundle, item index,
ranker) are registered and verified here like any model's, but built and loaded by
:func:`driftloop.recsys.load_recommender`, which always loads a version's model and index
together (the registry cannot build one without the other part's libraries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftloop.core.errors import InvalidParameterError
from driftloop.registry._model import LoadedModel
from driftloop.registry._signature import Signature

__all__ = ["RecommenderFlavor"]


class RecommenderFlavor:
    """Artifacts ``model`` (the bundle), ``index`` (the ANN index), optionally ``ranker``."""

    name = "recommender"

    def accepts(self, model: Any) -> bool:
        return False  # registered with driftloop.recsys.register_recommender

    def task_of(self, model: Any) -> tuple[str, tuple[str, ...]]:
        return "recommendation", ()

    def save(self, model: Any, signature: Signature) -> dict[str, bytes]:
        raise InvalidParameterError(
            "Register a recommender with driftloop.recsys.register_recommender."
        )

    def load(
        self, artifacts: Mapping[str, bytes], signature: Signature, *, prefer_onnx: bool = True
    ) -> LoadedModel:
        raise InvalidParameterError(
            "A recommender is loaded with driftloop.recsys.load_recommender (its model and "
            "index together) and served at POST /v1/models/{name}/recommend."
        )
