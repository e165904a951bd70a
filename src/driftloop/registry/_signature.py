"""A model's signature: its inputs with their kinds, its task, label and classes.

Stored with every version; the server's request validation, the data gate, batch scoring
and monitoring read the kinds from it, and :mod:`driftloop.registry._encoding` turns
inputs into the model's matrix by it, the same way in training and in serving.

Feature kinds: ``number``, ``boolean`` (stored as 0/1), ``category`` (text; the
categories seen in training are kept in order, and a value's code is its index) and
timestamp parts (``derived_from`` a timestamp input, ``part`` one of :data:`PARTS`).

>>> import pandas as pd
>>> frame = pd.DataFrame({"amount": [1.5, 2.0], "online": [True, False], "city": ["b", "a"]})
>>> sig = Signature.infer(frame, task="binary", classes=("no", "yes"))
>>> [(f.name, f.kind, f.categories) for f in sig.features]
[('amount', 'number', ()), ('online', 'boolean', ()), ('city', 'category', ('a', 'b'))]
>>> Signature.from_json(sig.to_json()) == sig
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.stats import category_text

__all__ = ["PARTS", "FeatureSpec", "InputKind", "Signature", "column_kind"]

InputKind = Literal["number", "boolean", "category"]
PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour", "minute", "epoch_days")
"""Parts a timestamp input can be turned into (each one number feature)."""
SIGNATURE_FORMAT = 2


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its name, dtype, kind, categories and where it came from.

    ``view``/``view_version`` name the feature view it was read from (enrichment);
    ``derived_from``/``part`` mark a part of a timestamp input (``signup_time.hour``).
    """

    name: str
    dtype: str = "float64"
    view: str | None = None
    view_version: str | int | None = None  # feature-store versions are content hashes
    kind: InputKind = "number"
    categories: tuple[str, ...] = ()
    nullable: bool = True
    derived_from: str | None = None
    part: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), [])}
        if self.categories:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["categories"] = tuple(known.get("categories") or ())
        return cls(**known)


@dataclass(frozen=True)
class Signature:
    """The ordered inputs a model expects (its matrix columns), and what it predicts."""

    features: tuple[FeatureSpec, ...]
    task: str = ""  # binary, multiclass or regression; empty until a model fills it in
    label: str | None = None
    classes: tuple[str, ...] = ()
    timestamp: str | None = None
    id: str | None = None
    metric: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def inputs(self) -> list[str]:
        """What a request carries: each feature, with timestamp parts folded into their
        timestamp input, in first-seen order."""
        return list(dict.fromkeys(f.derived_from or f.name for f in self.features))

    def spec(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise SchemaMismatchError(
            f"The model has no feature '{name}'. Features: {', '.join(self.names)}."
        )

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        *,
        task: str = "",
        classes: Sequence[str] = (),
        sources: Mapping[str, tuple[str, str | int | None]] | None = None,
        categorical: Sequence[str] = (),
        derived: Mapping[str, tuple[str, str]] | None = None,
        **details: Any,
    ) -> Signature:
        """The signature of a feature frame: each column's kind from its dtype (bools are
        boolean, numbers number, text and ``categorical`` columns category, with the
        categories seen). ``sources`` maps a feature to its (view, version); ``derived``
        a timestamp part to its (input, part); ``details`` fill label, timestamp, id,
        metric."""
        sources, derived = sources or {}, derived or {}
        specs = []
        for name in frame.columns:
            column = frame[name]
            key = str(name)
            kind = "category" if key in categorical else column_kind(column, key)
            view, view_version = sources.get(key, (None, None))
            input_name, part = derived.get(key, (None, None))
            specs.append(
                FeatureSpec(
                    key,
                    str(column.dtype),
                    view,
                    view_version,
                    kind,
                    _categories(column) if kind == "category" else (),
                    bool(column.isna().any()),
                    input_name,
                    part,
                )
            )
        return cls(tuple(specs), task, classes=tuple(classes), **details)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        sources: Mapping[str, tuple[str, str | int | None]] | None = None,
    ) -> Signature:
        """The signature of a feature frame (see :meth:`infer`); the task is filled in from
        the model when it is registered."""
        return cls.infer(frame, sources=sources)

    def with_features(self, features: Sequence[FeatureSpec]) -> Signature:
        return replace(self, features=tuple(features))

    def to_json(self) -> dict[str, Any]:
        """The form stored in the registry (``format`` 2; format 1 was a list of features)."""
        out: dict[str, Any] = {
            "format": SIGNATURE_FORMAT,
            "features": [f.to_json() for f in self.features],
            "task": self.task,
        }
        for key in ("label", "timestamp", "id", "metric"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.classes:
            out["classes"] = list(self.classes)
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Signature:
        """Read a stored signature, of format 2 or the earlier list of features (binary)."""
        if isinstance(data, list):  # format 1: binary classifiers of 0/1 labels
            specs = tuple(FeatureSpec.from_json(item) for item in data)
            return cls(specs, "binary", classes=("0", "1"))
        if not isinstance(data, Mapping) or data.get("format") != SIGNATURE_FORMAT:
            raise InvalidParameterError(
                f"A model signature of format {data.get('format') if isinstance(data, Mapping) else type(data).__name__!r} "  # noqa: E501
                f"is not supported; expected format {SIGNATURE_FORMAT}."
            )
        return cls(
            tuple(FeatureSpec.from_json(item) for item in data["features"]),
            task=str(data.get("task", "")),
            label=data.get("label"),
            classes=tuple(data.get("classes") or ()),
            timestamp=data.get("timestamp"),
            id=data.get("id"),
            metric=data.get("metric"),
            extra=dict(data.get("extra") or {}),
        )

    # Kept for callers of the first format.
    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.features]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Signature:
        return cls.from_json(list(items))

    def incompatibilities(self, expected: Signature) -> list[str]:
        """What breaks a consumer expecting ``expected``: a missing or re-kinded input, a
        changed task or classes."""
        mine = {f.name: f for f in self.features}
        problems = []
        if self.task != expected.task:
            problems.append(f"task is {self.task}, expected {expected.task}")
        elif expected.classes and self.classes != expected.classes:
            problems.append(
                f"classes are {', '.join(self.classes)}, expected {', '.join(expected.classes)}"
            )
        for spec in expected.features:
            got = mine.get(spec.name)
            if got is None:
                problems.append(f"missing feature '{spec.name}'")
            elif got.kind != spec.kind:
                problems.append(f"'{spec.name}' is {got.kind}, expected {spec.kind}")
        return problems


def column_kind(column: pd.Series, name: str = "") -> InputKind:
    """``boolean``, ``number`` or ``category`` by a column's dtype; timestamps are refused
    (they become features through declared parts)."""
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(column):
        raise SchemaMismatchError(
            f"Column '{name}' is a timestamp; a model takes numbers, booleans and text. "
            f'Declare parts of it as features (e.g. timestamps = {{{name} = ["hour", '
            '"day_of_week"]}) or exclude it.'
        )
    values = column.dropna()
    if len(values) and values.map(lambda v: isinstance(v, bool)).all():
        return "boolean"  # an object column of True/False (with nulls)
    return "category"


def _categories(column: pd.Series) -> tuple[str, ...]:
    return tuple(sorted({category_text(v) for v in column.dropna().unique()}))
