"""What the registry records: signatures, versions, alias moves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftloop.registry._signature import Signature

__all__ = ["AliasEvent", "ModelVersion"]


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
