"""Enrichment from driftloop's feature store (``FeatureStore.online_features``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftloop.features import FeatureStore
from driftloop.serving._features import EnrichedRow

__all__ = ["FeatureStoreSource"]


class FeatureStoreSource:
    """A :class:`~driftloop.serving.FeatureSource` over a feature store's online store.

    One ``read`` is one ``online_features`` call: one round trip to SQLite or Redis for
    every entity row of a batch. Entity rows carry the request's own values too, so
    on-demand features computed from request fields work.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def read(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> list[EnrichedRow]:
        got = self.store.online_features(list(features), entity_rows)
        names = list(got.values)
        return [
            EnrichedRow(
                {f: got.values[f][i] for f in names},
                {f: got.timestamps[f][i] for f in names},
            )
            for i in range(len(entity_rows))
        ]
