"""The rules model: what answers for a model when the model cannot (its circuit open, it
raising, the feature store down), from ``[models.<name>.fallback]`` — an expression over
the model's features (:mod:`driftloop.core._expression`) and a safe default.

It scores like a :class:`~driftloop.registry.LoadedModel`: binary, the positive class's
probability (shape n; a bool counts as 1 or 0); regression, the value (shape n);
multiclass, a class name per row, as a one-hot probability row (n x classes). A row
whose expression fails (division by zero, a missing value as a condition, text against
a number) or gives no valid answer (a probability outside [0, 1], NaN, an unknown class)
gets the default; without a default that is an error.

>>> import numpy as np
>>> from driftloop.core.config import FallbackPolicy
>>> policy = FallbackPolicy(rules="0.9 if amount > 2000 or tx_count_1h > 5 else 0.05",
...                         default=0.05)
>>> rules = RulesModel.of(policy, model_name="fraud", task="binary",
...                       feature_names=["amount", "tx_count_1h"])
>>> rules.predict(np.array([[2500.0, 0.0], [10.0, 9.0], [10.0, 1.0], [np.nan, np.nan]]))
array([0.9 , 0.9 , 0.05, 0.05])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftloop.core.config import FallbackPolicy
from driftloop.core.errors import (
    ConfigError,
    DataValidationError,
    InvalidParameterError,
    SchemaMismatchError,
)
from driftloop.core.expression import Expression
from driftloop.registry import LoadedModel
from driftloop.stats import category_text

__all__ = ["RulesModel"]

Answer = bool | float | str
TASKS = ("binary", "multiclass", "regression")


class RulesModel:
    """A model's fallback: ``expression`` per row, else ``default`` (see the module docs).

    Build with :meth:`of` (from a :class:`~driftloop.core.config.FallbackPolicy`),
    :meth:`for_model` (the same, with names, kinds and classes from a loaded model) or
    :meth:`constant` (a safe default only); they check what the constructor just stores.
    """

    def __init__(
        self,
        *,
        model_name: str,
        task: str,
        classes: tuple[str, ...],
        feature_names: tuple[str, ...],
        expression: Expression | None,
        default: Answer | None,
        categories: Mapping[str, tuple[str, ...]],
        booleans: frozenset[str],
    ) -> None:
        self.model_name = model_name
        self.task = task
        self.classes = classes
        self.feature_names = feature_names
        self.expression = expression
        self.default = default
        self.categories = categories
        self.booleans = booleans
        used = expression.names if expression is not None else ()
        self._columns = [(name, feature_names.index(name)) for name in used]

    @classmethod
    def of(
        cls,
        policy: FallbackPolicy,
        *,
        model_name: str,
        task: str,
        feature_names: Sequence[str],
        classes: Sequence[str] = (),
        categories: Mapping[str, Sequence[str]] | None = None,
        booleans: Collection[str] = (),
    ) -> RulesModel:
        """The rules of ``policy`` for a model with these features (in matrix order) and
        classes. ``categories`` maps a category feature to its categories (code ``i`` in
        the matrix is ``categories[i]``); ``booleans`` names the boolean features. Both
        only matter when :meth:`predict` gets no raw rows.

        Raises :class:`~driftloop.core.errors.ConfigError` naming the key
        (``models.<name>.fallback.rules`` or ``.default``) when the rules read a feature
        the model does not have or the default is no answer for the task.
        """
        if task not in TASKS:
            raise InvalidParameterError(
                f"Model '{model_name}' has task {task!r}; rules serve {', '.join(TASKS)}."
            )
        if task == "multiclass" and len(classes) < 2:
            raise InvalidParameterError(
                f"Model '{model_name}' is multiclass but names {len(classes)} class(es)."
            )
        expression = None
        if policy.rules is not None:
            try:
                expression = Expression.parse(
                    policy.rules,
                    names=list(feature_names),
                    filename=f"models.{model_name}.fallback.rules",
                )
            except InvalidParameterError as exc:
                raise ConfigError(f"models.{model_name}.fallback.rules: {exc.message}.") from None
        rules = cls(
            model_name=model_name,
            task=task,
            classes=tuple(classes),
            feature_names=tuple(feature_names),
            expression=expression,
            default=policy.default,
            categories={k: tuple(v) for k, v in (categories or {}).items()},
            booleans=frozenset(booleans),
        )
        if policy.default is not None:
            _, problem = rules._answer(policy.default)
            if problem:
                raise ConfigError(f"models.{model_name}.fallback.default: {problem}.")
        return rules

    @classmethod
    def for_model(cls, policy: FallbackPolicy, model: LoadedModel) -> RulesModel:
        """:meth:`of` with the features, kinds, categories, task and classes of ``model``."""
        features = model.signature.features
        return cls.of(
            policy,
            model_name=model.name,
            task=model.task,
            feature_names=model.feature_names,
            classes=model.classes,
            categories={f.name: f.categories for f in features if f.kind == "category"},
            booleans=[f.name for f in features if f.kind == "boolean"],
        )

    @classmethod
    def constant(
        cls,
        default: Answer,
        *,
        model_name: str,
        task: str,
        feature_names: Sequence[str] = (),
        classes: Sequence[str] = (),
    ) -> RulesModel:
        """A fallback that answers ``default`` for every row (the declared safe default)."""
        return cls.of(
            FallbackPolicy(default=default),
            model_name=model_name,
            task=task,
            feature_names=feature_names,
            classes=classes,
        )

    def predict(
        self, matrix: NDArray[np.float64], raw_rows: Sequence[Sequence[Any]] | None = None
    ) -> NDArray[np.float64]:
        """Outputs for ``matrix`` (n x features, the model's encoding), shaped as the
        model's: n values, or n x classes probabilities.

        With ``raw_rows`` (each row's values in feature order: numbers, bools, category
        text, None or NaN when missing) the rules read those; else what the matrix
        decodes to (category codes through ``categories``; a code without them stays a
        number).
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        n = matrix.shape[0]
        if matrix.ndim != 2 or (self.feature_names and matrix.shape[1] != len(self.feature_names)):
            raise SchemaMismatchError(
                f"Input has shape {matrix.shape}; model '{self.model_name}' expects "
                f"(rows, {len(self.feature_names)})."
            )
        if raw_rows is not None and len(raw_rows) != n:
            raise SchemaMismatchError(
                f"{len(raw_rows)} raw row(s) were given for a matrix of {n} row(s)."
            )
        if self.expression is None:
            assert self.default is not None  # a FallbackPolicy has rules or a default
            answers = [self._answer(self.default)[0]] * n
        else:
            answers = [self._row(i, matrix, raw_rows) for i in range(n)]
        if self.task != "multiclass":
            return np.asarray(answers, dtype=np.float64)
        out = np.zeros((n, len(self.classes)), dtype=np.float64)
        out[np.arange(n), np.asarray(answers, dtype=np.intp)] = 1.0
        return out

    def _row(
        self, i: int, matrix: NDArray[np.float64], raw_rows: Sequence[Sequence[Any]] | None
    ) -> float:
        assert self.expression is not None
        row: dict[str, Any] = {}
        for name, j in self._columns:
            if raw_rows is not None:
                row[name] = _raw_value(raw_rows[i][j])
            else:
                row[name] = self._decode(name, float(matrix[i, j]))
        try:
            answer, problem = self._answer(self.expression.evaluate(row))
        except Exception as exc:  # any failure of one row's rules is that row's alone
            answer, problem = math.nan, f"{type(exc).__name__}: {exc}"
        if not problem:
            return answer
        if self.default is None:
            shown = ", ".join(f"{k}={v!r}" for k, v in row.items())
            raise DataValidationError(
                f"Model '{self.model_name}' fallback rules give no answer for row {i} "
                f"({shown}): {problem}; and models.{self.model_name}.fallback has no "
                "default to answer instead."
            )
        return self._answer(self.default)[0]

    def _decode(self, name: str, code: float) -> Any:
        if math.isnan(code):
            return math.nan
        if name in self.categories:
            cats = self.categories[name]
            return cats[int(code)] if code.is_integer() and 0 <= code < len(cats) else math.nan
        if name in self.booleans:
            return bool(code)
        return float(code)

    def _answer(self, value: Any) -> tuple[float, str]:
        """``value`` as this task's output (multiclass: the class's index) and "", or
        NaN and what is wrong with it."""
        if self.task == "multiclass":
            text = value if isinstance(value, str) else _class_text(value)
            if text in self.classes:
                return float(self.classes.index(text)), ""
            return math.nan, f"{value!r} is not a class (classes: {', '.join(self.classes)})"
        if isinstance(value, bool | np.bool_):
            if self.task == "binary":
                return float(value), ""
            return math.nan, f"a regression answer must be a number, got {value!r}"
        if not isinstance(value, int | float | np.number) or not math.isfinite(float(value)):
            return math.nan, f"{self.task} answers must be finite numbers, got {value!r}"
        number = float(value)
        if self.task == "binary" and not 0.0 <= number <= 1.0:
            return math.nan, f"a probability must be in [0, 1], got {value!r}"
        return number, ""

    def __repr__(self) -> str:
        rules = self.expression.source if self.expression is not None else None
        return (
            f"RulesModel({self.model_name!r}, task={self.task!r}, rules={rules!r}, "
            f"default={self.default!r})"
        )


def _raw_value(value: Any) -> Any:
    """A request's value as the rules see it: numbers as floats, missing as NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.number):
        return float(value)
    return value


def _class_text(value: Any) -> str | None:
    if isinstance(value, bool | int | float | np.number) and not (
        isinstance(value, float) and not math.isfinite(value)
    ):
        return category_text(value)
    return None
