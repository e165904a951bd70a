"""On-demand features: vectorised Python over request fields and looked-up features.

>>> ratio = OnDemandFeature(
...     "amount_ratio", inputs=["amount", "amount_mean_7d"],
...     function=lambda df: df["amount"] / df["amount_mean_7d"])
>>> find_cycle({"a": ["b"], "b": ["a"]})
['a', 'b', 'a']
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.core.errors import DataValidationError, InvalidParameterError
from driftloop.features._definitions import DTYPES, check_name, content_version

__all__ = ["OnDemandFeature", "apply_on_demand", "check_no_cycles", "find_cycle"]

OnDemandFunction = Callable[[pd.DataFrame], Any]


def _source_of(function: OnDemandFunction) -> str:
    """The function's source, or (defined where no source file exists) a digest of its
    byte code and constants, so the version still changes when the function does."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        if code is None:
            return getattr(function, "__qualname__", repr(function))
        raw = code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()
        return "bytecode:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, eq=False)
class OnDemandFeature:
    """A feature computed at request time by ``function(frame) -> column``.

    ``frame`` holds one row per entity row with the declared ``inputs`` as columns:
    request fields (columns of the entity frame / entity rows) and other features
    (looked-up or on-demand). The function must be vectorised over the whole frame.
    """

    name: str
    inputs: Sequence[str]
    function: OnDemandFunction
    dtype: str = "float64"
    description: str = ""
    owner: str = ""

    def __post_init__(self) -> None:
        check_name("On-demand feature", self.name)
        inputs = tuple(self.inputs)
        if not inputs:
            raise InvalidParameterError(f"On-demand feature '{self.name}' declares no inputs.")
        object.__setattr__(self, "inputs", inputs)
        if self.dtype not in DTYPES:
            raise InvalidParameterError(
                f"On-demand feature '{self.name}' has dtype {self.dtype!r}. "
                f"Known: {', '.join(DTYPES)}."
            )
        if not callable(self.function):
            raise InvalidParameterError(f"On-demand feature '{self.name}' needs a callable.")

    @property
    def feature_names(self) -> list[str]:
        return [self.name]

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "on_demand_feature",
            "name": self.name,
            "inputs": list(self.inputs),
            "dtype": self.dtype,
            "schema": {self.name: self.dtype},
            "function": _source_of(self.function),
            "description": self.description,
            "owner": self.owner,
        }

    @property
    def version(self) -> str:
        return content_version(self.spec())

    def compute(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"On-demand feature '{self.name}' needs input(s) {', '.join(missing)}, "
                "which are neither request fields nor features of this call."
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            result = self.function(frame[list(self.inputs)])
        values = np.asarray(result)
        if values.shape != (len(frame),):
            raise DataValidationError(
                f"On-demand feature '{self.name}' returned shape {values.shape}; "
                f"expected one value per row ({len(frame)},)."
            )
        return values


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle of ``graph`` (node -> what it depends on) as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep in graph and dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check_no_cycles(features: Sequence[OnDemandFeature]) -> None:
    """Refuse on-demand features that depend on themselves, naming the cycle."""
    graph = {f.name: list(f.inputs) for f in features}
    cycle = find_cycle(graph)
    if cycle:
        raise InvalidParameterError(
            f"On-demand features form a dependency cycle: {' -> '.join(cycle)}."
        )


def evaluation_order(
    wanted: Sequence[str], on_demand: Mapping[str, OnDemandFeature]
) -> list[OnDemandFeature]:
    """The on-demand features needed for ``wanted``, dependencies first."""
    order: list[OnDemandFeature] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        if name in seen or name not in on_demand:
            return
        seen.add(name)
        for dep in on_demand[name].inputs:
            add(dep)
        order.append(on_demand[name])

    for name in wanted:
        add(name)
    return order


def apply_on_demand(frame: pd.DataFrame, features: Sequence[OnDemandFeature]) -> pd.DataFrame:
    """Add the on-demand columns to ``frame`` in order (each sees the ones before it)."""
    for feature in features:
        frame[feature.name] = feature.compute(frame)
    return frame
