"""Reference profiles: what a model's training data looked like, computed once, kept small.

A profile is stored with each model version (registry) and is what monitoring compares
live windows against, so drift never needs the training data again. Per numeric feature
it keeps quantile bin edges with counts (for PSI, JS, KL, chi-square), a sorted sample
(for KS and Wasserstein) and moments; per categorical feature the category counts.

>>> import pandas as pd
>>> profile = Profile.from_frame(pd.DataFrame({"amount": [1.0, 2.0, 3.0, None],
...                                            "channel": ["web", "pos", "web", "web"]}))
>>> profile.numeric["amount"].nulls, profile.categorical["channel"].counts
(1, (1, 3))
>>> Profile.from_dict(profile.to_dict()) == profile
True
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError

__all__ = ["CategoricalProfile", "NumericProfile", "Profile"]

PROFILE_FORMAT = 1


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """A numeric feature: ``counts[i]`` values fall in bin ``i`` of the ``edges``.

    ``edges`` are the inner bin edges (unique reference quantiles); bin 0 is
    ``(-inf, edges[0])`` and the last bin ``[edges[-1], inf)``, so
    ``len(counts) == len(edges) + 1``. ``sample`` is sorted.
    """

    name: str
    count: int
    nulls: int
    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    sample: NDArray[np.float64]
    mean: float
    std: float
    min: float
    max: float

    def bin_of(self, values: NDArray[np.float64]) -> NDArray[np.intp]:
        """The bin index of each value, by the reference edges."""
        return np.searchsorted(self.edges, values, side="right")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return _as_dict(self) == _as_dict(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical feature: how often each category was seen."""

    name: str
    count: int
    nulls: int
    categories: tuple[str, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """The reference profile of a frame (and optionally of the model's scores on it)."""

    rows: int
    numeric: Mapping[str, NumericProfile] = field(default_factory=dict)
    categorical: Mapping[str, CategoricalProfile] = field(default_factory=dict)
    prediction: NumericProfile | None = None

    @property
    def features(self) -> list[str]:
        """Feature names, in the order of the profiled frame."""
        return [*self.numeric, *self.categorical]

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        predictions: NDArray[np.float64] | pd.Series | None = None,
        bins: int = 20,
        sample_size: int = 5_000,
        seed: int = 0,
    ) -> Profile:
        """Profile every column of ``frame``: numbers and booleans as numeric, the rest
        (strings, categories) as categorical."""
        if bins < 1:
            raise InvalidParameterError(f"Profile 'bins' must be >= 1; got {bins}.")
        if sample_size < 1:
            raise InvalidParameterError(f"Profile 'sample_size' must be >= 1; got {sample_size}.")
        rng = np.random.default_rng(seed)
        numeric: dict[str, NumericProfile] = {}
        categorical: dict[str, CategoricalProfile] = {}
        for name in frame.columns:
            column = frame[name]
            if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                numeric[str(name)] = _numeric(str(name), values, bins, sample_size, rng)
            else:
                categorical[str(name)] = _categorical(str(name), column)
        prediction = None
        if predictions is not None:
            scores = np.asarray(predictions, dtype=np.float64)
            prediction = _numeric("prediction", scores, bins, sample_size, rng)
        return cls(len(frame), numeric, categorical, prediction)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (arrays as base64 of little-endian bytes)."""
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "numeric": [_as_dict(p) for p in self.numeric.values()],
            "categorical": [
                {
                    "name": p.name,
                    "count": p.count,
                    "nulls": p.nulls,
                    "categories": list(p.categories),
                    "counts": list(p.counts),
                }
                for p in self.categorical.values()
            ],
            "prediction": _as_dict(self.prediction) if self.prediction else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read what :meth:`to_dict` wrote."""
        if data.get("format") != PROFILE_FORMAT:
            raise InvalidParameterError(
                f"Profile format {data.get('format')!r} is not supported; "
                f"expected {PROFILE_FORMAT}."
            )
        numeric = {d["name"]: _numeric_from(d) for d in data["numeric"]}
        categorical = {
            d["name"]: CategoricalProfile(
                d["name"], d["count"], d["nulls"], tuple(d["categories"]), tuple(d["counts"])
            )
            for d in data["categorical"]
        }
        prediction = _numeric_from(data["prediction"]) if data.get("prediction") else None
        return cls(int(data["rows"]), numeric, categorical, prediction)


def _numeric(
    name: str, values: NDArray[np.float64], bins: int, sample_size: int, rng: np.random.Generator
) -> NumericProfile:
    present = values[np.isfinite(values)]  # NaN and +-inf count as missing
    nulls = len(values) - len(present)
    if len(present) == 0:
        empty = np.zeros(0)
        return NumericProfile(
            name, 0, nulls, empty, np.zeros(1, np.int64), empty, np.nan, np.nan, np.nan, np.nan
        )
    if len(present) > sample_size:
        sample = rng.choice(present, size=sample_size, replace=False)
        sample.sort()
        ordered = present
    else:
        sample = np.sort(present)
        ordered = sample  # the same values, sorted: quantiles select faster
    inner = np.quantile(ordered, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.zeros(0)
    edges = np.unique(inner)
    if ordered is sample:  # sorted: count per bin with one binary search per edge
        below = np.searchsorted(sample, edges, side="left")
        counts = np.diff(np.concatenate(([0], below, [len(sample)])))
    else:
        counts = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1
        )
    return NumericProfile(
        name=name,
        count=len(present),
        nulls=nulls,
        edges=edges.astype(np.float64),
        counts=counts.astype(np.int64),
        sample=sample.astype(np.float64),
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present.min()),
        max=float(present.max()),
    )


def _categorical(name: str, column: pd.Series) -> CategoricalProfile:
    present = column.dropna().astype(str)
    counts = present.value_counts().sort_index()
    return CategoricalProfile(
        name=name,
        count=len(present),
        nulls=len(column) - len(present),
        categories=tuple(str(c) for c in counts.index),
        counts=tuple(int(v) for v in counts.to_numpy()),
    )


def _encode(array: NDArray[Any], dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _decode(text: str, dtype: str) -> NDArray[Any]:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def _as_dict(p: NumericProfile) -> dict[str, Any]:
    return {
        "name": p.name,
        "count": p.count,
        "nulls": p.nulls,
        "edges": _encode(p.edges, "<f8"),
        "counts": _encode(p.counts, "<i8"),
        "sample": _encode(p.sample, "<f8"),
        "mean": p.mean,
        "std": p.std,
        "min": p.min,
        "max": p.max,
    }


def _numeric_from(d: Mapping[str, Any]) -> NumericProfile:
    return NumericProfile(
        name=d["name"],
        count=int(d["count"]),
        nulls=int(d["nulls"]),
        edges=_decode(d["edges"], "<f8"),
        counts=_decode(d["counts"], "<i8"),
        sample=_decode(d["sample"], "<f8"),
        mean=float(d["mean"]),
        std=float(d["std"]),
        min=float(d["min"]),
        max=float(d["max"]),
    )
