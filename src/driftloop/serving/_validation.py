"""Request bodies to feature matrices, refusing bad input with the instance, field, rule.

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
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftloop.serving._errors import HttpError, Violation

__all__ = [
    "Options",
    "ParsedInstances",
    "RowSpec",
    "parse_body",
    "parse_instances",
    "valid_key",
]

MAX_VIOLATIONS = 20
_PLAIN_NUMBERS = frozenset({float, int})
MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class RowSpec:
    """What an instance may hold: the model's features and the entity keys."""

    features: Sequence[str]
    entity_keys: Sequence[str] = ()

    @functools.cached_property
    def values_of(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """An instance's feature values, in order (KeyError if one is missing)."""
        if len(self.features) == 1:
            only = self.features[0]
            return lambda instance: (instance[only],)
        return operator.itemgetter(*self.features)


@dataclass
class ParsedInstances:
    """The rows in feature order (NaN where missing) and what to enrich."""

    matrix: npt.NDArray[np.float64]
    entity_rows: list[dict[str, Any]]
    enrich: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    explain: bool = False
    top_k: int = 5


_DEFAULT_OPTIONS = Options()
_BODY_FIELDS = frozenset({"instances", "options"})


def parse_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError("body-invalid", f"The body is not valid JSON: {exc}.") from None


def _number(value: Any) -> float | None:
    """The float of a JSON number (bools refused), NaN for null; None when invalid."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


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
        raise _one(unknown[0], "unknown field; known: instances, options")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise _one("instances", "must be a non-empty list of objects")
    if len(instances) > max_instances:
        raise _one("instances", f"must hold at most {max_instances} instances", len(instances))
    return instances


def _all_numeric(instances: Sequence[Any], spec: RowSpec) -> npt.NDArray[np.float64] | None:
    """The matrix when every instance holds exactly the features as finite JSON numbers
    (the common case, without a Python loop per value); None to take the checked path."""
    n_features = len(spec.features)
    if n_features == 0:
        return None
    values_of = spec.values_of
    try:
        if not all(type(i) is dict and len(i) == n_features for i in instances):
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


def parse_instances(instances: Sequence[Any], spec: RowSpec) -> ParsedInstances:
    """Validate every instance; raise one error listing the first violations."""
    fast = _all_numeric(instances, spec)
    if fast is not None:
        return ParsedInstances(fast, [{}] * len(instances))
    index = {name: i for i, name in enumerate(spec.features)}
    keys = set(spec.entity_keys)
    matrix = np.full((len(instances), len(spec.features)), np.nan)
    entity_rows: list[dict[str, Any]] = []
    enrich: dict[int, tuple[str, ...]] = {}
    violations: list[Violation] = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            violations.append({"instance": i, "field": None, "rule": "must be an object"})
            entity_rows.append({})
            continue
        entity: dict[str, Any] = {}
        for name, value in instance.items():
            if name in index:
                number = _number(value)
                if number is None:
                    violations.append(
                        {
                            "instance": i,
                            "field": name,
                            "rule": "must be a number or null",
                            "got": value,
                        }
                    )
                else:
                    matrix[i, index[name]] = number
            elif name in keys:
                if not valid_key(value):
                    violations.append(
                        {
                            "instance": i,
                            "field": name,
                            "rule": "entity key must be an integer or a string of 1 to "
                            f"{MAX_KEY_LENGTH} characters without NUL",
                            "got": value,
                        }
                    )
                else:
                    entity[name] = value
            else:
                violations.append(_unknown(i, name, spec))
        entity_rows.append(entity)
        missing = tuple(f for f in spec.features if f not in instance)
        if missing and isinstance(instance, Mapping):
            absent = [k for k in spec.entity_keys if k not in entity]
            if entity and absent:
                violations.append(
                    {"instance": i, "field": absent[0], "rule": "is required to enrich "
                     f"{', '.join(missing[:5])} (every entity key is)"}
                )  # fmt: skip
            elif entity:
                enrich[i] = missing
            else:
                violations.append(
                    {
                        "instance": i,
                        "field": missing[0],
                        "rule": "is required (no entity key to enrich from)"
                        if keys
                        else "is required",
                        "missing": list(missing),
                    }
                )
        if len(violations) >= MAX_VIOLATIONS:
            break
    if violations:
        first = violations[0]
        where = f"instance {first['instance']}" if "instance" in first else "request"
        raise HttpError(
            "data-invalid",
            f"{len(violations)} invalid value(s); first: {where}, field "
            f"'{first['field']}' {first['rule']}.",
            violations,
        )
    return ParsedInstances(matrix, entity_rows, enrich)


def _unknown(i: int, name: str, spec: RowSpec) -> Violation:
    known = [*spec.features, *spec.entity_keys]
    shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    return {"instance": i, "field": name, "rule": f"unknown field; known: {shown}"}
