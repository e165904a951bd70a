"""What the registry records: signatures, versions, alias moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

__all__ = ["AliasEvent", "FeatureSpec", "ModelVersion", "Signature"]


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its name, dtype and, when known, the feature view it came from."""

    name: str
    dtype: str
    view: str | None = None
    view_version: str | int | None = None  # feature-store versions are content hashes


@dataclass(frozen=True)
class Signature:
    """The ordered inputs a model expects."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        sources: Mapping[str, tuple[str, str | int | None]] | None = None,
    ) -> Signature:
        """The signature of a feature frame; ``sources`` maps a feature to (view, version)."""
        sources = sources or {}
        specs = []
        for name in frame.columns:
            view, view_version = sources.get(str(name), (None, None))
            specs.append(FeatureSpec(str(name), str(frame[name].dtype), view, view_version))
        return cls(tuple(specs))

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.features]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Signature:
        return cls(tuple(FeatureSpec(**item) for item in items))

    def incompatibilities(self, expected: Signature) -> list[str]:
        """What breaks a consumer expecting ``expected`` (missing or retyped features)."""
        mine = {f.name: f.dtype for f in self.features}
        problems = []
        for spec in expected.features:
            if spec.name not in mine:
                problems.append(f"missing feature '{spec.name}'")
            elif _kind(mine[spec.name]) != _kind(spec.dtype):
                problems.append(f"'{spec.name}' is {mine[spec.name]}, expected {spec.dtype}")
        return problems


def _kind(dtype: str) -> str:
    if dtype.startswith(("int", "uint", "float", "bool", "Int", "Float")):
        return "numeric"
    return dtype


@dataclass(frozen=True)
class ModelVersion:
    """One registered version (without its profile and card: ask the registry for those)."""

    name: str
    version: int
    flavor: str
    created_at: datetime
    created_by: str
    signature: Signature
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    gate_report: Mapping[str, Any] | None = None
    artifacts: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def feature_names(self) -> list[str]:
        return self.signature.names


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias (immutable history): who moved it where, when and why."""

    model_name: str
    alias: str
    version: int | None
    previous_version: int | None
    at: datetime
    who: str
    why: str
    kind: str = "move"
