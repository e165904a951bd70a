"""Online feature enrichment: entity keys in a request become feature values.

The feature store (another part) reads its online store; the server relies only on
:class:`FeatureSource`, called once per batch with every entity row of the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Columns",
    "EnrichedRow",
    "FeatureSource",
    "InMemoryFeatureSource",
    "read_columns",
    "uses_request_values",
]


@dataclass(frozen=True, slots=True)
class EnrichedRow:
    """Feature values for one entity row, and when each value was computed."""

    values: Mapping[str, Any]
    timestamps: Mapping[str, datetime | None]


@runtime_checkable
class FeatureSource(Protocol):
    """Reads online features for many entity rows in one call."""

    def read(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> list[EnrichedRow]:
        """One :class:`EnrichedRow` per entity row; unknown values are ``None``."""
        ...

    def problem(self) -> str | None:
        """Why the source cannot serve features now (None: it can), e.g. a store that
        lost its rows; checked every few seconds off the request path."""
        ...


Columns = tuple[dict[str, list[Any]], dict[str, list[datetime | None]]]
"""Values and their times by feature, one entry per entity row."""


def read_columns(
    source: FeatureSource, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
) -> Columns:
    """``source.read`` as columns: the source's own ``read_columns`` when it has one (no
    object per row; :class:`~driftloop.serving.FeatureStoreSource` does), else built from
    its rows. A feature the source does not know is absent from both mappings."""
    own = getattr(source, "read_columns", None)
    if own is not None:
        columns: Columns = own(entity_rows, features)
        return columns
    rows = source.read(entity_rows, features)
    return (
        {f: [r.values.get(f) for r in rows] for f in features},
        {f: [r.timestamps.get(f) for r in rows] for f in features},
    )


def uses_request_values(source: FeatureSource) -> bool:
    """Whether ``source`` reads the request's own values beside the entity keys
    (on-demand features do); a source says no by ``uses_request_values = False``."""
    return bool(getattr(source, "uses_request_values", True))


class InMemoryFeatureSource:
    """Feature rows held in a dict, keyed by one entity key (embedding, tests).

    >>> from datetime import UTC
    >>> source = InMemoryFeatureSource("card_id")
    >>> source.put("c1", {"count_1d": 4.0}, datetime(2026, 1, 1, tzinfo=UTC))
    >>> source.read([{"card_id": "c1"}, {"card_id": "c2"}], ["count_1d"])[1].values
    {'count_1d': None}
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._rows: dict[str, tuple[dict[str, Any], datetime | None]] = {}
        self._lock = threading.Lock()
        self.reads = 0

    def put(self, entity: Any, values: Mapping[str, Any], ts: datetime | None = None) -> None:
        with self._lock:
            old = self._rows.get(str(entity), ({}, None))[0]
            self._rows[str(entity)] = ({**old, **values}, ts)

    def read(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str]
    ) -> list[EnrichedRow]:
        with self._lock:
            self.reads += 1
            out = []
            for row in entity_rows:
                values, ts = self._rows.get(str(row.get(self.key)), ({}, None))
                out.append(
                    EnrichedRow(
                        {f: values.get(f) for f in features},
                        {f: ts if f in values else None for f in features},
                    )
                )
        return out

    def problem(self) -> str | None:
        return None  # held in this process: nothing to lose
