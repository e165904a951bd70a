"""The feature store: definitions, point-in-time training frames, online features.

>>> from driftloop.features import Entity, FeatureStore, FeatureView, Field
"""

from __future__ import annotations

from typing import Any

from driftloop.features._catalog import Catalog
from driftloop.features._definitions import Entity, FeatureView, Field, parse_duration
from driftloop.features._example import (
    example_features_py,
    transaction_definitions,
    transaction_feature_names,
    transaction_feature_store,
)
from driftloop.features._loading import load_definitions
from driftloop.features._materialize import MaterializationResult
from driftloop.features._on_demand import OnDemandFeature, find_cycle
from driftloop.features._online import (
    OnlineBatch,
    OnlineEvent,
    OnlineRead,
    OnlineRow,
    OnlineStore,
    SqliteOnlineStore,
)
from driftloop.features._online_cache import CachedOnlineStore
from driftloop.features._registry import ApplyPlan, Change, DefinitionRegistry
from driftloop.features._sources import (
    CsvSource,
    DataFrameSource,
    ParquetSource,
    QuerySource,
    TableSource,
)
from driftloop.features._store import (
    FeatureStore,
    OnlineFeatures,
    online_store_from_url,
)
from driftloop.features._windows import Aggregation, StreamFeatureView

__all__ = [
    "Aggregation",
    "ApplyPlan",
    "CachedOnlineStore",
    "Catalog",
    "Change",
    "CsvSource",
    "DataFrameSource",
    "DefinitionRegistry",
    "Entity",
    "FeatureStore",
    "FeatureView",
    "Field",
    "MaterializationResult",
    "OnDemandFeature",
    "OnlineBatch",
    "OnlineEvent",
    "OnlineFeatures",
    "OnlineRead",
    "OnlineRow",
    "OnlineStore",
    "ParquetSource",
    "QuerySource",
    "RedisOnlineStore",
    "RedisStreamConsumer",
    "SqliteOnlineStore",
    "StreamFeatureView",
    "TableSource",
    "example_features_py",
    "find_cycle",
    "load_definitions",
    "online_store_from_url",
    "parse_duration",
    "stream_consumer",
    "transaction_definitions",
    "transaction_feature_names",
    "transaction_feature_store",
]


def __getattr__(name: str) -> Any:
    # These need the optional `redis` client: import them only when asked for.
    if name == "RedisOnlineStore":
        from driftloop.features._redis import RedisOnlineStore

        return RedisOnlineStore
    if name in ("RedisStreamConsumer", "stream_consumer"):
        from driftloop.features import _stream

        return getattr(_stream, name)
    raise AttributeError(f"module 'driftloop.features' has no attribute {name!r}")
