"""Model registry: versions, aliases with history, lineage, cards, verified artifacts."""

from __future__ import annotations

from driftloop.registry._flavors import (
    Flavor,
    LightGBMFlavor,
    LoadedModel,
    SklearnFlavor,
    flavor_for,
    onnx_scores,
    onnx_session,
)
from driftloop.registry._registry import Registry
from driftloop.registry._rows import parse_ref
from driftloop.registry._store import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    artifact_store_from_url,
    sha256_hex,
)
from driftloop.registry._types import AliasEvent, FeatureSpec, ModelVersion, Signature

__all__ = [
    "AliasEvent",
    "ArtifactStore",
    "FeatureSpec",
    "Flavor",
    "FsspecArtifactStore",
    "LightGBMFlavor",
    "LoadedModel",
    "LocalArtifactStore",
    "ModelVersion",
    "Registry",
    "Signature",
    "SklearnFlavor",
    "artifact_store_from_url",
    "flavor_for",
    "onnx_scores",
    "onnx_session",
    "parse_ref",
    "sha256_hex",
]
