"""What an instance may hold (:class:`RowSpec`, by the model's signature) and what parsing
makes of a request (:class:`ParsedInstances`)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from driftloop.registry import FeatureSpec, Signature, ValueEncoder

if TYPE_CHECKING:
    from driftloop.serving._keyed import Shape

__all__ = [
    "EVENT_TIME",
    "MAX_KEY_LENGTH",
    "PLAIN_NUMBERS",
    "ParsedInstances",
    "RowSpec",
    "Slot",
]

PLAIN_NUMBERS = frozenset({float, int})
MAX_KEY_LENGTH = 256
EVENT_TIME = "event_time"
"""The request field (and body field) of the event time of a model without a timestamp
column."""


@dataclass(frozen=True)
class Slot:
    """Where one request field goes: a feature column and its encoder, or the columns of
    a timestamp's parts."""

    column: int = -1
    encoder: ValueEncoder | None = None
    parts: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class RowSpec:
    """What an instance may hold: the model's features (by ``signature`` when given, else
    every one a number), the entity keys, the id, the event-time field and ``keys``:
    fields the model does not read but the router does (the traffic policy's sticky key)."""

    features: Sequence[str]
    entity_keys: Sequence[str] = ()
    signature: Signature | None = None
    keys: Sequence[str] = ()

    @classmethod
    def of(
        cls, signature: Signature, entity_keys: Sequence[str] = (), keys: Sequence[str] = ()
    ) -> RowSpec:
        extra = tuple(k for k in keys if k not in entity_keys and k not in signature.names)
        return cls(tuple(signature.names), tuple(entity_keys), signature, extra)

    @functools.cached_property
    def specs(self) -> tuple[FeatureSpec, ...]:
        if self.signature is not None:
            return self.signature.features
        return tuple(FeatureSpec(name) for name in self.features)

    @functools.cached_property
    def slots(self) -> dict[str, Slot]:
        slots: dict[str, Slot] = {}
        parts: dict[str, list[tuple[int, str]]] = {}
        for j, spec in enumerate(self.specs):
            if spec.derived_from is not None:
                parts.setdefault(spec.derived_from, []).append((j, spec.part or ""))
            else:
                slots[spec.name] = Slot(j, ValueEncoder(spec))
        for name, columns in parts.items():
            slots[name] = Slot(parts=tuple(columns))
        return slots

    @functools.cached_property
    def inputs(self) -> tuple[str, ...]:
        """The request fields that are model inputs, in the signature's order."""
        return tuple(dict.fromkeys(s.derived_from or s.name for s in self.specs))

    @property
    def event_field(self) -> str:
        timestamp = self.signature.timestamp if self.signature is not None else None
        return timestamp or EVENT_TIME

    @property
    def id_field(self) -> str | None:
        return self.signature.id if self.signature is not None else None

    @functools.cached_property
    def plain(self) -> bool:
        """Every input a number feature: the all-numbers fast path applies."""
        return all(s.kind == "number" and s.derived_from is None for s in self.specs)

    @functools.cached_property
    def columnar(self) -> bool:
        """Not all numbers, and no timestamp input: the column-wise typed path applies."""
        return not self.plain and not any(s.derived_from for s in self.specs)

    @functools.cached_property
    def mixed(self) -> bool:
        """Some feature's audited value is not its encoded float: a category's is its
        text (booleans are audited as 1/0, timestamp parts as numbers)."""
        return any(s.kind == "category" for s in self.specs)

    @functools.cached_property
    def shapes(self) -> dict[tuple[str, ...], Shape | None]:
        """The keyed path's shapes by the fields an instance holds (see ``_shape_of``)."""
        return {}

    @functools.cached_property
    def values_of(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """An instance's feature values, in order (KeyError if one is missing)."""
        if len(self.features) == 1:
            only = self.features[0]
            return lambda instance: (instance[only],)
        return operator.itemgetter(*self.features)


@dataclass
class ParsedInstances:
    """The rows in feature order (NaN where null, absent or unseen), what to enrich, and
    per row: the values as the audit log keeps them (None: the matrix is, as when no
    feature is a category), the categories never seen in training and the event time."""

    matrix: npt.NDArray[np.float64]
    entity_rows: list[dict[str, Any]]
    enrich: dict[int, tuple[str, ...]] = field(default_factory=dict)
    raw: list[list[Any]] | None = None
    unseen: dict[int, list[str]] = field(default_factory=dict)
    event_ts: list[datetime | None] | None = None
    complete: bool = False  # every feature has a finite value (the all-numbers path)
    # every feature an instance gave has a finite value: only enrichment leaves any without
    enrich_only: bool = False
