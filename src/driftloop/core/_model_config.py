"""``[models.<name>]``: one section per model of a project, read by train, serve, score,
monitor and the loop (the name is the registry name).

>>> config = ModelConfig(data="data/loans.csv", label="repaid", timestamp="applied_at",
...                      decision={"threshold": 0.7, "labels": ["reject", "approve"]})
>>> config.decision.decide(0.9)
'approve'
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftloop.core.expression import Expression

__all__ = [
    "DecisionPolicy",
    "FallbackPolicy",
    "MissingPolicy",
    "ModelConfig",
]

Part = Literal["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute", "epoch_days"]
Default = float | int | bool | str


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class DecisionPolicy(_Section):
    """What a score (binary: the positive probability; regression: the value) becomes:
    ``labels[i]`` for the i-th band cut by ``threshold`` or the ascending ``bands``.
    None by default: responses carry no decision."""

    threshold: float | None = None
    bands: tuple[float, ...] = ()
    labels: tuple[str, ...]

    @model_validator(mode="after")
    def _consistent(self) -> DecisionPolicy:
        if (self.threshold is None) == (not self.bands):
            raise ValueError("give either threshold or bands (not both)")
        cuts = self.cuts
        if list(cuts) != sorted(cuts) or len(set(cuts)) != len(cuts):
            raise ValueError(f"bands must be strictly ascending; got {list(cuts)}")
        if len(self.labels) != len(cuts) + 1:
            raise ValueError(
                f"{len(cuts)} cut(s) make {len(cuts) + 1} bands, so labels needs "
                f"{len(cuts) + 1} names; got {len(self.labels)}"
            )
        return self

    @property
    def cuts(self) -> tuple[float, ...]:
        return (self.threshold,) if self.threshold is not None else self.bands

    def decide(self, score: float) -> str:
        """The label of the band ``score`` falls in (a cut belongs to the band above it)."""
        for cut, label in zip(self.cuts, self.labels, strict=False):
            if score < cut:
                return label
        return self.labels[-1]


class MissingPolicy(_Section):
    """What serving does with a feature it cannot fill (absent from the request, an
    entity the online store does not know, a null stored value) or a category never seen
    in training: ``flag`` scores with a null and names it in the response's ``missing``,
    the audit log and metrics; ``reject`` answers 422; ``default`` uses ``defaults[f]``
    (and flags features without a default)."""

    policy: Literal["flag", "reject", "default"] = "flag"
    defaults: dict[str, Default] = Field(default_factory=dict)
    unseen: Literal["missing", "reject"] = "missing"

    @model_validator(mode="after")
    def _defaults_need_policy(self) -> MissingPolicy:
        if self.defaults and self.policy != "default":
            raise ValueError(
                f"defaults are only used with policy = 'default' (got {self.policy!r})"
            )
        return self


class FallbackPolicy(_Section):
    """What the server answers when the model cannot (circuit open, the model raising,
    the feature store down): ``rules``, an expression over the model's features
    (:mod:`driftloop.core.expression`), else ``default``, the safe answer. Both mean by
    task: binary, the positive probability (a bool is 1 or 0); regression, the value;
    multiclass, a class name. ``default`` also answers a row whose rules fail.

    >>> FallbackPolicy(rules="amount.__class__")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for FallbackPolicy
    rules
      Value error, attribute access is not allowed: `amount.__class__`...
    """

    rules: str | None = None
    default: bool | float | str | None = None

    @field_validator("rules")
    @classmethod
    def _safe(cls, rules: str | None) -> str | None:
        if rules is not None:
            Expression.parse(rules)  # syntax and constructs; feature names when served
        return rules

    @model_validator(mode="after")
    def _something(self) -> FallbackPolicy:
        if self.rules is None and self.default is None:
            raise ValueError("give rules, a default or both")
        if isinstance(self.default, float) and not math.isfinite(self.default):
            raise ValueError(f"default must be a finite number, got {self.default!r}")
        return self


class ModelConfig(_Section):
    """A model: where its training data is and what in it is what.

    ``data`` is a Parquet or CSV file, a folder or glob of them, or ``duckdb:SELECT ...``
    (``{root}`` in the query is the project folder). Features are the table's columns but
    the label, timestamp, id, entity keys and ``context`` (carried for fairness and
    segments), narrowed by ``include`` or ``exclude``; plus ``store_features`` read from the
    feature store as of each row's timestamp (``["*"]``: every feature it defines); plus
    ``timestamps`` parts. ``task`` ``auto`` is inferred from the label and said;
    ``metric`` is what gates and the loop judge on (default: the task's). ``gates``
    overrides keys of ``[gates]`` for this model (e.g. its fairness attribute).
    """

    data: str | None = None
    label: str | None = None
    timestamp: str | None = None
    id: str | None = None
    entity_keys: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    timestamps: dict[str, tuple[Part, ...]] = Field(default_factory=dict)
    store_features: tuple[str, ...] = ()
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    metric: str | None = None
    positive_class: str | None = None
    segment: str | None = None
    valid_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    decision: DecisionPolicy | None = None
    missing: MissingPolicy = MissingPolicy()
    fallback: FallbackPolicy | None = None
    gates: dict[str, Any] = Field(default_factory=dict)  # overrides of [gates], checked there

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.include and self.exclude:
            raise ValueError("give include or exclude, not both")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"valid_fraction ({self.valid_fraction}) + test_fraction "
                f"({self.test_fraction}) must leave rows to train on"
            )
        default = self.fallback.default if self.fallback is not None else None
        if default is not None and self.task != "auto":
            problem = _default_problem(self.task, default)
            if problem:
                raise ValueError(f"fallback.default: {problem}")
        return self


def _default_problem(task: str, default: bool | float | str) -> str:
    """What is wrong with ``default`` as an answer for ``task`` ("" when nothing)."""
    if task == "multiclass":
        return ""  # checked against the model's classes when served
    if isinstance(default, str):
        return f"a number is needed for a {task} model, got {default!r}"
    if task == "binary" and not 0.0 <= float(default) <= 1.0:
        return f"a probability in [0, 1] is needed for a binary model, got {default!r}"
    return ""
