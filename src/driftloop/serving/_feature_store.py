"""Enrichment from driftloop's feature store (``FeatureStore.online_features``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftloop.features import FeatureStore
from driftloop.serving._features import Columns, EnrichedRow

__all__ = ["FeatureStoreSource"]


class FeatureStoreSource:
    """A :class:`~driftloop.serving.FeatureSource` over a feature store's online store.

    One ``read`` is one ``online_features`` call: one round trip to SQLite or Redis for
    every entity row of a batch. Entity rows carry the request's own values too, so
    on-demand features computed from request fields work.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        catalog = store.catalog
        self.defined = {f for v in catalog.views.values() for f in v.feature_names}
        self.defined.update(catalog.on_demand)
        # only on-demand features read the request's own values beside its keys
        self.uses_request_values = bool(catalog.on_demand)

    def problem(self) -> str | None:
        return self.store.online_problem()

    def read_columns(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> Columns:
        """Values and times by feature (what :meth:`read` gives, without a row object per
        entity); features the store does not define are left out."""
        features = [f for f in features if f in self.defined]
        if not features:
            return {}, {}
        got = self.store.online_features(features, entity_rows)
        return got.values, got.timestamps

    def read(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> list[EnrichedRow]:
        """Features the store does not define (request fields the instance left out) come
        back unknown, as missing values, not as an error."""
        features = [f for f in features if f in self.defined]
        if not features:
            return [EnrichedRow({}, {}) for _ in entity_rows]
        got = self.store.online_features(features, entity_rows)
        names = list(got.values)
        if not names:
            return [EnrichedRow({}, {}) for _ in entity_rows]
        # rows from columns by zip (in C), not a dict lookup per row and feature
        values = zip(*[got.values[f] for f in names], strict=True)
        stamps = zip(*[got.timestamps[f] for f in names], strict=True)
        return [
            EnrichedRow(dict(zip(names, v, strict=True)), dict(zip(names, t, strict=True)))
            for v, t in zip(values, stamps, strict=True)
        ]
