"""Training frames from the feature store: the features a model is served, as of each event.

:func:`feature_store_frame` makes a :data:`~driftloop.training._source.TrainingFrameFn`
that turns the window's labelled transactions into an entity frame (join keys, event
time, label, the request fields on-demand features read) and asks the store for a
point-in-time-correct training frame (``FeatureStore.training_frame``, inside DuckDB).
Serving reads the same definitions online (``FeatureStoreSource``), so a model trains
on exactly what it is served. Each feature's (feature view, version) goes into the
training frame's ``sources``, hence into the registered version's signature and lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.features import FeatureStore
from driftloop.training._source import SourceWindow, TrainingFrame

__all__ = ["CONTEXT_COLUMNS", "FeatureStoreFrame", "feature_store_frame", "numeric_features"]

CONTEXT_COLUMNS = ("segment", "age_band")
"""Columns kept beside the features for per-segment metrics and fairness gates."""
_NUMERIC = ("int64", "int32", "float64", "float32", "bool")


def numeric_features(store: FeatureStore) -> list[str]:
    """Every numeric feature the store defines, as references in definition order
    (``view:feature`` for view features, then on-demand features by name)."""
    catalog = store.catalog
    refs = [
        f"{view.name}:{f.name}"
        for view in catalog.views.values()
        for f in view.features
        if f.dtype in _NUMERIC
    ]
    return refs + [od.name for od in catalog.on_demand.values() if od.dtype in _NUMERIC]


@dataclass(frozen=True)
class FeatureStoreFrame:
    """``fn(window, label, timestamp) -> TrainingFrame`` backed by a :class:`FeatureStore`.

    Model inputs are the request fields that the requested on-demand features read
    (``amount`` for ``amount / customer_amount_mean_7d``: a served request carries it)
    followed by the requested features. ``context`` columns are copied from the
    transactions or, by ``customer_id``, from the customers table.
    """

    store: FeatureStore
    features: tuple[str, ...]
    context: tuple[str, ...] = CONTEXT_COLUMNS

    def plan(self) -> tuple[list[str], list[str], dict[str, tuple[str, str]], list[str]]:
        """(request fields, feature columns, feature -> (view, version), join keys)."""
        catalog = self.store.catalog
        resolved = catalog.resolve(list(self.features))
        view_features = {f for v in catalog.views.values() for f in v.feature_names}
        request: list[str] = []
        for od in resolved.on_demand:
            request += [
                i
                for i in od.inputs
                if i not in view_features and i not in catalog.on_demand and i not in request
            ]
        sources: dict[str, tuple[str, str]] = {}
        for view_name, names in resolved.views.items():
            view = catalog.view(view_name)
            sources.update({f: (view_name, view.version) for f in names if f in resolved.outputs})
        sources.update({od.name: (od.name, od.version) for od in resolved.on_demand})
        keys = list(dict.fromkeys(k for v in resolved.views for k in catalog.view(v).join_keys))
        outputs = [f for f in resolved.outputs if f not in request]
        return request, outputs, {f: sources[f] for f in outputs}, keys

    def fingerprint(self) -> list[Any]:
        """What the training set depends on besides the source window: the features, the
        versions of their definitions and the content of each view's source rows (a
        count and an order-independent sum of row hashes, computed inside DuckDB)."""
        request, outputs, sources, _ = self.plan()
        offline = self.store.offline
        content = {}
        for view_name in sorted(self.store.catalog.resolve(list(self.features)).views):
            relation = offline.relation(self.store.view(view_name))
            count, total = offline.connection.execute(
                f"SELECT count(*), sum(hash(s)) FROM (SELECT * FROM {relation}) s"
            ).fetchall()[0]
            content[view_name] = [int(count), str(total)]
        return [
            "feature_store",
            request,
            outputs,
            {f: list(s) for f, s in sources.items()},
            list(self.context),
            content,
        ]

    def __call__(self, window: SourceWindow, label: str, timestamp: str) -> TrainingFrame:
        request, outputs, sources, keys = self.plan()
        tx = window.transactions
        wanted = list(dict.fromkeys(["tx_id", timestamp, label, *keys, *request]))
        missing = [c for c in wanted if c not in tx.columns]
        if missing:
            raise SchemaMismatchError(
                f"The transactions lack column(s) {', '.join(missing)} that the feature store "
                f"needs (join keys, event time, label or request fields of on-demand "
                f"features). Columns: {', '.join(map(str, tx.columns))}."
            )
        entity_df = tx[wanted].reset_index(drop=True)
        built = self.store.training_frame(entity_df, list(self.features), timestamp_field=timestamp)
        frame = pd.DataFrame({c: built[c].to_numpy() for c in wanted})
        frame[label] = built[label].to_numpy().astype(np.int8)
        inputs = [*request, *outputs]
        for name in inputs:
            frame[name] = _as_float(built[name], name)
        self._add_context(frame, window)
        return TrainingFrame(frame, inputs, sources, tuple(keys))

    def _add_context(self, frame: pd.DataFrame, window: SourceWindow) -> None:
        tx, customers = window.transactions, window.customers
        for column in self.context:
            if column in frame.columns:
                continue
            if column in tx.columns:
                frame[column] = tx[column].to_numpy()
            elif column in customers.columns and "customer_id" in tx.columns:
                by_customer = customers.set_index("customer_id")[column]
                frame[column] = by_customer.reindex(tx["customer_id"]).to_numpy()


def _as_float(column: pd.Series, name: str) -> Any:
    try:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SchemaMismatchError(
            f"Feature '{name}' is {column.dtype}, not numeric: model inputs must be numbers "
            "(leave it out of the features)."
        ) from exc


def feature_store_frame(
    store: FeatureStore,
    features: Sequence[str] | None = None,
    *,
    context: Sequence[str] = CONTEXT_COLUMNS,
) -> FeatureStoreFrame:
    """A training-frame function over ``store``: ``features`` (references such as
    ``"customer_tx:customer_count_1h"`` or bare names; default every numeric feature
    the store defines), point in time at each transaction's timestamp.

    Unknown features are refused now, listing the known ones.
    """
    chosen = tuple(features) if features is not None else tuple(numeric_features(store))
    if not chosen:
        raise InvalidParameterError(
            "The feature store defines no numeric feature to train on; define some in "
            "features.py or pass features=[...]."
        )
    frame_fn = FeatureStoreFrame(store, chosen, tuple(context))
    frame_fn.plan()  # unknown references fail here, not halfway through a pipeline
    return frame_fn
