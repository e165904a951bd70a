"""The keyed path: instances that carry the entity keys and leave some features to
enrichment, parsed with one shape lookup per field set instead of a check per value."""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from driftloop.serving._rowspec import MAX_KEY_LENGTH, PLAIN_NUMBERS, ParsedInstances, RowSpec

__all__ = ["Shape", "keyed_numeric"]


@dataclass(frozen=True)
class Shape:
    """How instances holding one set of fields are taken apart on the keyed path."""

    columns: list[int]  # the matrix columns of the features given
    given: Callable[[Mapping[str, Any]], Any]  # their values, in column order
    absent: tuple[str, ...]  # the features to enrich
    keys: tuple[str, ...]  # the entity keys, in the spec's order
    # a row in feature order from the given values with a NaN appended (absent: the NaN)
    row: Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _shape_of(fields: tuple[str, ...], spec: RowSpec) -> Shape | None:
    """The shape of instances holding ``fields``: every entity key, some features (at
    least one left out, or there is nothing to enrich) and perhaps the sticky key; None
    for anything else (the checked path names what is wrong)."""
    if fields in spec.shapes:
        return spec.shapes[fields]
    names = set(fields)
    known = set(spec.features)
    shape: Shape | None = None
    if (
        len(names) == len(fields)
        and names.issuperset(spec.entity_keys)
        and names <= known | set(spec.entity_keys) | set(spec.keys)
        and not known <= names
    ):
        present = [f for f in spec.features if f in names]
        at = {f: k for k, f in enumerate(present)}
        order = [at.get(f, len(present)) for f in spec.features]  # absent: the NaN
        shape = Shape(
            [spec.features.index(f) for f in present],
            operator.itemgetter(*present) if len(present) > 1 else _single(present),
            tuple(f for f in spec.features if f not in names),
            tuple(spec.entity_keys),
            operator.itemgetter(*order) if len(order) > 1 else _one_of(order[0]),
        )
    if len(spec.shapes) < _MAX_SHAPES:
        spec.shapes[fields] = shape
    return shape


def _one_of(k: int) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    return lambda values: (values[k],)


def _single(present: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    if not present:
        return lambda instance: ()
    only = present[0]
    return lambda instance: (instance[only],)


_NAN = math.nan
_MAX_SHAPES = 64
"""Shapes remembered per spec (a client sending ever new field sets cannot grow it)."""


def _plain_key(value: Any) -> bool:
    """An entity key the keyed path takes as is (others: the checked path converts or
    names them)."""
    kind = type(value)
    if kind is str:
        return 0 < len(value) <= MAX_KEY_LENGTH and "\x00" not in value
    return kind is int and abs(value) < 2**63


def keyed_numeric(
    instances: Sequence[Any], spec: RowSpec, event_time: datetime | None
) -> ParsedInstances | None:
    """The rows when every instance holds the same fields, every entity key valid and
    some of the features as finite JSON numbers, the rest to be read from the feature
    store (enrichment's common request: a key and what the caller knows); None to take
    the checked path, which gives the same result and names what is wrong."""
    if not spec.entity_keys or not spec.plain or type(instances[0]) is not dict:
        return None
    fields = tuple(instances[0])
    shape = _shape_of(fields, spec)
    if shape is None:
        return None
    first = instances[0].keys()
    if not all(type(i) is dict and i.keys() == first for i in instances):
        return None
    keys = shape.keys
    if len(keys) == 1:
        (key,) = keys
        entity_rows = [{key: i[key]} for i in instances]
        if not all(_plain_key(i[key]) for i in instances):
            return None
    else:
        entity_rows = [{k: i[k] for k in keys} for i in instances]
        if not all(_plain_key(row[k]) for row in entity_rows for k in keys):
            return None
    n = len(instances)
    if shape.columns:
        given = [shape.given(i) for i in instances]
        values = given[0] if n == 1 else list(itertools.chain.from_iterable(given))
        if not set(map(type, values)) <= PLAIN_NUMBERS:
            return None
        try:  # an infinite value (or a sum overflowing): the checked path names it
            if not math.isfinite(sum(values)):
                return None
            # each row in feature order by one C call (NaN where enrichment fills in)
            row = shape.row
            matrix = np.array([row((*g, _NAN)) for g in given], dtype=np.float64)
        except OverflowError:  # an integer beyond double range
            return None
    else:
        matrix = np.full((n, len(spec.features)), np.nan)
    return ParsedInstances(
        matrix,
        entity_rows,
        dict.fromkeys(range(n), shape.absent),
        event_ts=[event_time] * n,
        enrich_only=True,
    )
