"""Request bodies to feature matrices by the model's signature, refusing bad input with
the instance, field and rule.

A request field is one of the model's inputs (a number, boolean or category feature, or a
timestamp whose parts are features), an entity key (enrichment reads the features the
instance leaves out by it), the model's id column (kept in the audit log with the keys)
or the event time (the model's timestamp column, else ``event_time``). Values are encoded
by the same tables training used (:class:`~driftloop.registry.ValueEncoder`), so a row
scores the same online and offline.

>>> spec = RowSpec(features=("amount", "count_1d"), entity_keys=("card_id",))
>>> parsed = parse_instances([{"amount": 12.5, "card_id": "c1"}], spec)
>>> parsed.matrix.tolist(), parsed.enrich
([[12.5, nan]], {0: ('count_1d',)})
>>> try:
...     parse_instances([{"amount": "12"}], spec)
... except HttpError as exc:
...     exc.violations[0]
{'instance': 0, 'field': 'amount', 'rule': 'must be a number or null', 'got': '12'}
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.registry import (
    FeatureSpec,
    InvalidValue,
    Signature,
    ValueEncoder,
    parse_time,
    time_part,
)
from driftloop.serving._body import MAX_DEPTH, parse_body
from driftloop.serving._errors import HttpError, Violation

__all__ = [
    "EVENT_TIME",
    "MAX_DEPTH",
    "Options",
    "ParsedInstances",
    "RowSpec",
    "event_time_of",
    "instances_of",
    "parse_body",
    "parse_instances",
    "parse_options",
    "valid_key",
]

MAX_VIOLATIONS = 20
_PLAIN_NUMBERS = frozenset({float, int})
MAX_KEY_LENGTH = 256
EVENT_TIME = "event_time"
"""The request field (and body field) of the event time of a model without a timestamp
column."""


@dataclass(frozen=True)
class _Slot:
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
    def slots(self) -> dict[str, _Slot]:
        slots: dict[str, _Slot] = {}
        parts: dict[str, list[tuple[int, str]]] = {}
        for j, spec in enumerate(self.specs):
            if spec.derived_from is not None:
                parts.setdefault(spec.derived_from, []).append((j, spec.part or ""))
            else:
                slots[spec.name] = _Slot(j, ValueEncoder(spec))
        for name, columns in parts.items():
            slots[name] = _Slot(parts=tuple(columns))
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
    def shapes(self) -> dict[tuple[str, ...], _Shape | None]:
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


@dataclass(frozen=True)
class Options:
    explain: bool = False
    top_k: int = 5


_DEFAULT_OPTIONS = Options()
_BODY_FIELDS = frozenset({"instances", "options", EVENT_TIME})


def valid_key(value: Any) -> bool:
    """An entity key or id every audit backend can store: a short string without NUL, or an
    integer."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, str) and 0 < len(value) <= MAX_KEY_LENGTH and "\x00" not in value


def parse_options(raw: Any, n_features: int) -> Options:
    if raw is None:
        return _DEFAULT_OPTIONS
    if not isinstance(raw, dict):
        raise _one("options", "must be an object")
    unknown = sorted(set(raw) - {"explain", "top_k"})
    if unknown:
        raise _one(f"options.{unknown[0]}", "unknown option; known: explain, top_k")
    explain = raw.get("explain", False)
    if not isinstance(explain, bool):
        raise _one("options.explain", "must be true or false", explain)
    top_k = raw.get("top_k", 5)
    if isinstance(top_k, float) and top_k.is_integer() and abs(top_k) < 2**31:
        top_k = int(top_k)  # 3.0 is an integer to JSON Schema
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_features:
        raise _one("options.top_k", f"must be an integer from 1 to {n_features}", top_k)
    return Options(explain, top_k)


def _one(field_name: str, rule: str, got: Any = None) -> HttpError:
    violation: Violation = {"field": field_name, "rule": rule}
    if got is not None:
        violation["got"] = got
    return HttpError("data-invalid", f"Field '{field_name}' {rule}.", [violation])


def instances_of(body: Any, max_instances: int) -> list[Any]:
    if not isinstance(body, dict):
        raise _one("body", "must be a JSON object with 'instances'")
    if not _BODY_FIELDS.issuperset(body):
        unknown = sorted(set(body) - _BODY_FIELDS)
        raise _one(unknown[0], f"unknown field; known: {', '.join(sorted(_BODY_FIELDS))}")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise _one("instances", "must be a non-empty list of objects")
    if len(instances) > max_instances:
        raise _one("instances", f"must hold at most {max_instances} instances", len(instances))
    return instances


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Event and label times are within these (what every audit backend and monitoring's
frames can hold, far from any overflow)."""


def event_time_of(value: Any) -> datetime:
    """An event or label time: :func:`parse_time`, within ``EARLIEST``..``LATEST``;
    raises :class:`InvalidValue`."""
    when = parse_time(value)
    if not EARLIEST <= when < LATEST:
        raise InvalidValue("must be a date-time from 1900-01-01 to 2199-12-31 (UTC)")
    return when


def request_time(body: Mapping[str, Any]) -> datetime | None:
    """The body's ``event_time`` (every instance's, unless an instance gives its own)."""
    value = body.get(EVENT_TIME)
    if value is None:
        return None
    try:
        return event_time_of(value)
    except InvalidValue as exc:
        raise _one(EVENT_TIME, exc.rule, value) from None


def _all_numeric(instances: Sequence[Any], spec: RowSpec) -> npt.NDArray[np.float64] | None:
    """The matrix when every instance holds exactly the features as finite JSON numbers
    (the common case, without a Python loop per value), and perhaps the sticky key; None
    to take the checked path."""
    n_features = len(spec.features)
    if n_features == 0 or not spec.plain:
        return None
    values_of = spec.values_of
    try:
        if spec.keys:  # the sticky key may come along
            key, wide = spec.keys[0], n_features + 1
            if not all(
                type(i) is dict and (len(i) == n_features or (len(i) == wide and key in i))
                for i in instances
            ):
                return None
        elif not all(type(i) is dict and len(i) == n_features for i in instances):
            return None
        rows = [values_of(i) for i in instances]
        values = rows[0] if len(rows) == 1 else list(itertools.chain.from_iterable(rows))
        if not set(map(type, values)) <= _PLAIN_NUMBERS:
            return None
        # an infinite value (or a sum overflowing) takes the checked path, which names it
        if not math.isfinite(sum(values)):
            return None
        return np.array(rows, dtype=np.float64)
    except (KeyError, OverflowError):  # a missing feature; an integer beyond double range
        return None


@dataclass(frozen=True)
class _Shape:
    """How instances holding one set of fields are taken apart on the keyed path."""

    columns: list[int]  # the matrix columns of the features given
    given: Callable[[Mapping[str, Any]], Any]  # their values, in column order
    absent: tuple[str, ...]  # the features to enrich
    keys: tuple[str, ...]  # the entity keys, in the spec's order


def _shape_of(fields: tuple[str, ...], spec: RowSpec) -> _Shape | None:
    """The shape of instances holding ``fields``: every entity key, some features (at
    least one left out, or there is nothing to enrich) and perhaps the sticky key; None
    for anything else (the checked path names what is wrong)."""
    if fields in spec.shapes:
        return spec.shapes[fields]
    names = set(fields)
    known = set(spec.features)
    shape: _Shape | None = None
    if (
        len(names) == len(fields)
        and names.issuperset(spec.entity_keys)
        and names <= known | set(spec.entity_keys) | set(spec.keys)
        and not known <= names
    ):
        present = [f for f in spec.features if f in names]
        shape = _Shape(
            [spec.features.index(f) for f in present],
            operator.itemgetter(*present) if len(present) > 1 else _single(present),
            tuple(f for f in spec.features if f not in names),
            tuple(spec.entity_keys),
        )
    if len(spec.shapes) < _MAX_SHAPES:
        spec.shapes[fields] = shape
    return shape


def _single(present: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    if not present:
        return lambda instance: ()
    only = present[0]
    return lambda instance: (instance[only],)


_MAX_SHAPES = 64
"""Shapes remembered per spec (a client sending ever new field sets cannot grow it)."""


def _plain_key(value: Any) -> bool:
    """An entity key the keyed path takes as is (others: the checked path converts or
    names them)."""
    kind = type(value)
    if kind is str:
        return 0 < len(value) <= MAX_KEY_LENGTH and "\x00" not in value
    return kind is int and abs(value) < 2**63


def _keyed_numeric(
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
    matrix = np.full((n, len(spec.features)), np.nan)
    if shape.columns:
        rows = [shape.given(i) for i in instances]
        values = rows[0] if n == 1 else list(itertools.chain.from_iterable(rows))
        if not set(map(type, values)) <= _PLAIN_NUMBERS:
            return None
        try:  # an infinite value (or a sum overflowing): the checked path names it
            if not math.isfinite(sum(values)):
                return None
            matrix[:, shape.columns] = rows
        except OverflowError:  # an integer beyond double range
            return None
    return ParsedInstances(
        matrix, entity_rows, dict.fromkeys(range(n), shape.absent), event_ts=[event_time] * n
    )


def parse_instances(
    instances: Sequence[Any],
    spec: RowSpec,
    *,
    event_time: datetime | None = None,
    reject_unseen: bool = False,
) -> ParsedInstances:
    """Validate every instance; raise one error listing the first violations.

    A feature an instance leaves out is read from the feature store when the instance
    carries the entity keys, else left null (the server's missing policy decides).
    ``event_time`` is the request's; ``reject_unseen`` refuses a category never seen in
    training instead of scoring it as null."""
    fast = _all_numeric(instances, spec)
    if fast is not None:
        times: list[datetime | None] | None = (
            None if event_time is None else [event_time] * len(instances)
        )
        return ParsedInstances(fast, [{}] * len(instances), event_ts=times, complete=True)
    keyed = _keyed_numeric(instances, spec, event_time)
    if keyed is not None:
        return keyed
    typed = _all_typed(instances, spec, event_time)
    if typed is not None and not (reject_unseen and typed.unseen):
        return typed
    return _Parser(spec, event_time, reject_unseen).parse(instances)


def _all_typed(
    instances: Sequence[Any], spec: RowSpec, event_time: datetime | None
) -> ParsedInstances | None:
    """Column by column, when every instance holds exactly the features (and perhaps the
    event time), each column of one valid non-null type: numbers, booleans, category
    strings. A Python call per column, not per value; None to take the checked path (which
    gives the same matrix, and names what is wrong)."""
    n_features = len(spec.features)
    if n_features == 0 or not spec.columnar:
        return None
    event, values_of = spec.event_field, spec.values_of
    try:
        if not all(
            type(i) is dict and (len(i) == n_features or (len(i) == n_features + 1 and event in i))
            for i in instances
        ):
            return None
        rows = [values_of(i) for i in instances]
    except KeyError:
        return None
    times: list[datetime | None] | None = None
    if any(len(i) > n_features for i in instances):
        try:
            times = [event_time_of(i[event]) if event in i else event_time for i in instances]
        except (InvalidValue, TypeError):
            return None
    elif event_time is not None:
        times = [event_time] * len(instances)
    columns = list(zip(*rows, strict=True))
    matrix = np.empty((len(rows), n_features))
    unseen: dict[int, list[str]] = {}
    categories: list[int] = []
    for j, (spec_j, column) in enumerate(zip(spec.specs, columns, strict=True)):
        kinds = set(map(type, column))
        if spec_j.kind == "number":
            try:  # an infinite value, or an integer beyond double range: checked path
                if not kinds <= _PLAIN_NUMBERS or not math.isfinite(sum(column)):
                    return None
            except OverflowError:
                return None
            matrix[:, j] = column
        elif spec_j.kind == "boolean":
            if kinds != {bool}:
                return None
            matrix[:, j] = column
        else:
            if kinds != {str}:
                return None
            encoder = spec.slots[spec_j.name].encoder
            assert encoder is not None
            codes = [encoder.encode(v) for v in column]
            matrix[:, j] = codes
            categories.append(j)
            for i, code in enumerate(codes):
                if code != code:
                    unseen.setdefault(i, []).append(spec_j.name)
    raw = matrix.tolist()
    for j in categories:
        for i, value in enumerate(columns[j]):
            raw[i][j] = value
    return ParsedInstances(
        matrix, [{}] * len(rows), raw=raw, unseen=unseen, event_ts=times, complete=not unseen
    )


class _Parser:
    """The checked path: one instance at a time, every value by its feature's rule."""

    def __init__(self, spec: RowSpec, event_time: datetime | None, reject_unseen: bool) -> None:
        self.spec = spec
        self.event_time = event_time
        self.reject_unseen = reject_unseen
        self.violations: list[Violation] = []

    def parse(self, instances: Sequence[Any]) -> ParsedInstances:
        spec, n = self.spec, len(instances)
        matrix = np.full((n, len(spec.features)), np.nan)
        raw: list[list[Any]] | None = (
            [[None] * len(spec.features) for _ in range(n)] if spec.mixed else None
        )
        out = ParsedInstances(matrix, [], raw=raw, event_ts=[self.event_time] * n)
        for i, instance in enumerate(instances):
            if not isinstance(instance, Mapping):
                self.violations.append({"instance": i, "field": None, "rule": "must be an object"})
                out.entity_rows.append({})
            else:
                self._instance(i, instance, out)
            if len(self.violations) >= MAX_VIOLATIONS:
                break
        if self.violations:
            first = self.violations[0]
            where = f"instance {first['instance']}" if "instance" in first else "request"
            if first["field"] is not None:
                where += f", field '{first['field']}'"
            raise HttpError(
                "data-invalid",
                f"{len(self.violations)} invalid value(s); first: {where} {first['rule']}.",
                self.violations,
            )
        return out

    def _bad(self, i: int, name: str, rule: str, value: Any) -> None:
        self.violations.append({"instance": i, "field": name, "rule": rule, "got": value})

    def _instance(self, i: int, instance: Mapping[str, Any], out: ParsedInstances) -> None:
        spec = self.spec
        slots, keys = spec.slots, spec.entity_keys
        event_field, id_field = spec.event_field, spec.id_field
        entity: dict[str, Any] = {}
        given: set[str] = set()
        for name, value in instance.items():
            slot = slots.get(name)
            if name == event_field:
                self._event(i, name, value, out)
                if slot is None:
                    continue
            if slot is not None:
                given.add(name)
                if slot.encoder is not None:
                    self._value(i, name, value, slot, out)
                else:
                    self._time_input(i, name, value, slot, out)
            elif name in spec.keys:
                continue  # read by the router, not by the model
            elif name in keys or name == id_field:
                if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                    value = int(value)  # 7.0 is an integer to JSON (Schema)
                if not valid_key(value):
                    what = "entity key" if name in keys else "id"
                    self._bad(
                        i,
                        name,
                        f"{what} must be an integer or a string of 1 to {MAX_KEY_LENGTH} "
                        "characters without NUL",
                        value,
                    )
                else:
                    entity[name] = value
            else:
                self.violations.append(_unknown(i, name, spec))
        out.entity_rows.append(entity)
        absent = [f for f in spec.inputs if f not in given]
        if not absent or not keys:
            return  # an absent input is scored null and flagged (the missing policy)
        have = [k for k in keys if k in entity]
        if have and len(have) < len(keys):
            lacking = next(k for k in keys if k not in entity)
            self.violations.append(
                {"instance": i, "field": lacking, "rule": "is required to enrich "
                 f"{', '.join(absent[:5])} (every entity key is)"}
            )  # fmt: skip
        elif have:
            out.enrich[i] = tuple(
                s.name for s in spec.specs if (s.derived_from or s.name) in absent
            )

    def _value(self, i: int, name: str, value: Any, slot: _Slot, out: ParsedInstances) -> None:
        encoder = slot.encoder
        assert encoder is not None
        if encoder.spec.kind == "category" and isinstance(value, int | float):
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # a whole number (3.0 is an integer to JSON Schema)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
                self._bad(i, name, "must be a string, a whole number within 64 bits, or null",
                          value)  # fmt: skip
                return
        try:
            number = encoder.encode(value)
        except InvalidValue as exc:
            self._bad(i, name, exc.rule, value)
            return
        out.matrix[i, slot.column] = number
        if out.raw is not None:
            out.raw[i][slot.column] = audited(encoder, value, number)
        if number != number and encoder.unseen(value):
            if self.reject_unseen:
                known = ", ".join(encoder.spec.categories[:10])
                self._bad(i, name, f"is a category never seen in training; known: {known}", value)
            else:
                out.unseen.setdefault(i, []).append(name)

    def _time_input(self, i: int, name: str, value: Any, slot: _Slot, out: ParsedInstances) -> None:
        if value is None:
            return
        try:
            when = parse_time(value)
        except InvalidValue as exc:
            self._bad(i, name, exc.rule, value)
            return
        for column, part in slot.parts:
            number = time_part(when, part)
            out.matrix[i, column] = number
            if out.raw is not None:
                out.raw[i][column] = number

    def _event(self, i: int, name: str, value: Any, out: ParsedInstances) -> None:
        if value is None:
            return
        try:
            when = event_time_of(value)
        except InvalidValue as exc:
            self._bad(i, name, f"(the event time) {exc.rule}", value)
            return
        assert out.event_ts is not None
        out.event_ts[i] = when


def audited(encoder: ValueEncoder, value: Any, number: float) -> Any:
    """A value as the audit log keeps it: a category's text, else the encoded number."""
    return value if encoder.spec.kind == "category" else number


def _unknown(i: int, name: str, spec: RowSpec) -> Violation:
    known = [*spec.inputs, *spec.entity_keys, *spec.keys]
    if spec.id_field:
        known.append(spec.id_field)
    if spec.event_field not in known:
        known.append(spec.event_field)
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return {"instance": i, "field": name, "rule": f"unknown field; known: {shown}"}
