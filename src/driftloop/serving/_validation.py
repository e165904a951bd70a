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

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.registry import (
    InvalidValue,
    ValueEncoder,
    parse_time,
    time_part,
)
from driftloop.serving._body import MAX_DEPTH, parse_body
from driftloop.serving._errors import HttpError, Violation
from driftloop.serving._keyed import keyed_numeric
from driftloop.serving._rowspec import (
    EVENT_TIME,
    MAX_KEY_LENGTH,
    PLAIN_NUMBERS,
    ParsedInstances,
    RowSpec,
    Slot,
)

__all__ = [
    "EVENT_TIME",
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
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
        if not set(map(type, values)) <= PLAIN_NUMBERS:
            return None
        # an infinite value (or a sum overflowing) takes the checked path, which names it
        if not math.isfinite(sum(values)):
            return None
        return np.array(rows, dtype=np.float64)
    except (KeyError, OverflowError):  # a missing feature; an integer beyond double range
        return None


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
    keyed = keyed_numeric(instances, spec, event_time)
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
                if not kinds <= PLAIN_NUMBERS or not math.isfinite(sum(column)):
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

    def _value(self, i: int, name: str, value: Any, slot: Slot, out: ParsedInstances) -> None:
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

    def _time_input(self, i: int, name: str, value: Any, slot: Slot, out: ParsedInstances) -> None:
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
