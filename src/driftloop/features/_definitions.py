"""Entities, fields and feature views: plain, frozen descriptions with a content hash.

>>> applicant = Entity("applicant", join_keys=["applicant_id"])
>>> view = FeatureView(
...     "applicant_profile", entities=[applicant], source="data/applicants.parquet",
...     timestamp_field="updated_at", schema=[Field("tenure_years", "float64")], ttl="30d")
>>> view.feature_names
['tenure_years']
>>> len(view.version)
12
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from driftloop.core.errors import InvalidParameterError
from driftloop.features._sources import Source, as_source

__all__ = [
    "DTYPES",
    "Entity",
    "FeatureView",
    "Field",
    "content_version",
    "parse_duration",
]

# Declared dtype -> the DuckDB type family a source column must have.
DTYPES: dict[str, str] = {
    "int64": "integer",
    "int32": "integer",
    "float64": "float",
    "float32": "float",
    "string": "string",
    "bool": "bool",
    "timestamp": "timestamp",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def check_name(kind: str, name: str) -> str:
    """Names become SQL identifiers and output columns: letters, digits, underscores."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(
            f"{kind} name {name!r} is not valid: use letters, digits and underscores, "
            "not starting with a digit."
        )
    return name


def parse_duration(value: str | timedelta | None, what: str = "duration") -> timedelta | None:
    """``"5m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"500ms"`` or a ``timedelta``.

    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    if value is None or isinstance(value, timedelta):
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise InvalidParameterError(f"{what} must be positive, got {value}.")
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise InvalidParameterError(
            f"{what} {value!r} is not a duration; use a number and a unit of us, ms, s, m, h, "
            "d, w (e.g. '5m', '24h', '7d')."
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidParameterError(f"{what} must be positive, got {value!r}.")
    return timedelta(seconds=seconds)


def content_version(spec: Mapping[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of the canonical JSON of ``spec``."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Entity:
    """A thing features describe (an applicant, a device), identified by its join keys."""

    name: str
    join_keys: Sequence[str] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_name("Entity", self.name)
        keys = tuple(self.join_keys) or (f"{self.name}_id",)
        for key in keys:
            check_name(f"Join key of entity '{self.name}'", key)
        object.__setattr__(self, "join_keys", keys)

    def spec(self) -> dict[str, Any]:
        return {"kind": "entity", "name": self.name, "join_keys": list(self.join_keys)}

    @property
    def version(self) -> str:
        return content_version(self.spec())


@dataclass(frozen=True)
class Field:
    """One feature column and its type (one of :data:`DTYPES`)."""

    name: str
    dtype: str = "float64"
    description: str = ""

    def __post_init__(self) -> None:
        check_name("Field", self.name)
        if self.dtype not in DTYPES:
            raise InvalidParameterError(
                f"Field '{self.name}' has dtype {self.dtype!r}. Known: {', '.join(DTYPES)}."
            )


def join_keys_of(entities: Sequence[Entity]) -> tuple[str, ...]:
    keys: list[str] = []
    for entity in entities:
        keys.extend(k for k in entity.join_keys if k not in keys)
    return tuple(keys)


def key_and_time_columns(
    join_keys: Sequence[str], timestamp_field: str, created_timestamp_field: str | None
) -> dict[str, str]:
    """The join keys and timestamps every source of a view must have."""
    cols = dict.fromkeys(join_keys, "key")
    cols[timestamp_field] = "timestamp"
    if created_timestamp_field:
        cols[created_timestamp_field] = "timestamp"
    return cols


class ViewCommon(abc.ABC):
    """What feature views and stream feature views share: keys, source, spec, version."""

    name: str
    entities: Sequence[Entity]
    source: Any
    timestamp_field: str
    created_timestamp_field: str | None
    description: str
    owner: str
    tags: Mapping[str, str]

    @property
    def join_keys(self) -> tuple[str, ...]:
        return join_keys_of(self.entities)

    @property
    def source_(self) -> Source:
        src: Source = self.source
        return src

    def common_spec(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "name": self.name,
            "entities": [e.spec() for e in self.entities],
            "source": self.source_.describe(),
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """The JSON-ready description of the view that its version hashes."""

    @property
    def version(self) -> str:
        return content_version(self.spec())


@dataclass(frozen=True, eq=False)
class FeatureView(ViewCommon):
    """Feature columns of some entities, read from a source with an event timestamp.

    A row is used for an event at time ``t`` when its ``timestamp_field`` is at or before
    ``t``, no older than ``ttl`` (if set), and, when ``created_timestamp_field`` is set,
    it was created at or before ``t`` (no late-arriving data leaks into training).

    ``online_max_age`` (off by default) declares how stale online rows of this view may
    be served: a :class:`FeatureStore` built from settings then keeps the view's hot rows
    in a per-process LRU for that long (:class:`CachedOnlineStore`).
    """

    name: str
    entities: Sequence[Entity]
    source: Any
    timestamp_field: str
    schema: Sequence[Field] = ()
    created_timestamp_field: str | None = None
    ttl: str | timedelta | None = None
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    online_max_age: str | timedelta | None = None

    def __post_init__(self) -> None:
        check_name("Feature view", self.name)
        entities = tuple(self.entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise InvalidParameterError(
                f"Feature view '{self.name}' needs at least one Entity in `entities`."
            )
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "source", as_source(self.source))
        object.__setattr__(self, "ttl", parse_duration(self.ttl, f"ttl of '{self.name}'"))
        age = parse_duration(self.online_max_age, f"online_max_age of '{self.name}'")
        object.__setattr__(self, "online_max_age", age)
        object.__setattr__(self, "schema", tuple(self.schema))
        object.__setattr__(self, "tags", dict(self.tags))
        self._check_columns()

    def _check_columns(self) -> None:
        seen: set[str] = set()
        reserved = {*self.join_keys, self.timestamp_field, self.created_timestamp_field}
        for f in self.schema:
            if f.name in seen:
                raise InvalidParameterError(
                    f"Feature view '{self.name}' declares field '{f.name}' twice."
                )
            if f.name in reserved:
                raise InvalidParameterError(
                    f"Feature view '{self.name}': field '{f.name}' is a join key or timestamp, "
                    "not a feature."
                )
            seen.add(f.name)

    @property
    def ttl_us(self) -> int | None:
        """The time to live in microseconds (None: rows never expire)."""
        ttl = self.ttl
        return ttl // timedelta(microseconds=1) if isinstance(ttl, timedelta) else None

    @property
    def features(self) -> tuple[Field, ...]:
        return tuple(self.schema)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def source_columns(self) -> dict[str, str]:
        """Columns the source must have, with their declared dtypes."""
        cols = key_and_time_columns(
            self.join_keys, self.timestamp_field, self.created_timestamp_field
        )
        cols.update({f.name: f.dtype for f in self.schema})
        return cols

    def spec(self) -> dict[str, Any]:
        """Everything that defines this view, JSON-able (the input of its version)."""
        ttl, age = self.ttl, self.online_max_age
        spec = {
            **self.common_spec("feature_view"),
            "ttl_seconds": ttl.total_seconds() if isinstance(ttl, timedelta) else None,
            "schema": {f.name: f.dtype for f in self.schema},
        }
        if isinstance(age, timedelta):  # only when set: other views keep their versions
            spec["online_max_age_seconds"] = age.total_seconds()
        return spec

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, features={self.feature_names}, version={self.version})"
