"""Model registry: versions, aliases with history, lineage, cards, verified artifacts,
traffic policies, tenants and API keys, the loop controller's decision log and leases."""

from __future__ import annotations

from driftloop.registry._encoding import (
    EncodedFrame,
    InvalidValue,
    ValueEncoder,
    encode_frame,
    feature_frame,
    parse_time,
    time_part,
    time_parts,
)
from driftloop.registry._flavors import FLAVORS, Flavor, LightGBMFlavor, SklearnFlavor, flavor_for
from driftloop.registry._keys import SCOPES, ApiKey, KeySnapshot, KeyStore, secret_digest
from driftloop.registry._model import LoadedModel
from driftloop.registry._onnx import Runtime, lightgbm_runtime, onnx_session, probe_rows
from driftloop.registry._registry import Registry
from driftloop.registry._release import Release
from driftloop.registry._rows import parse_ref
from driftloop.registry._schema import loop_decisions, loop_leases
from driftloop.registry._signature import PARTS, FeatureSpec, InputKind, Signature, column_kind
from driftloop.registry._store import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    artifact_store_from_url,
    sha256_hex,
)
from driftloop.registry._traffic import TrafficState, TrafficStore
from driftloop.registry._types import AliasEvent, ModelVersion
from driftloop.registry._usage import UsageStore

__all__ = [
    "FLAVORS",
    "PARTS",
    "SCOPES",
    "AliasEvent",
    "ApiKey",
    "ArtifactStore",
    "EncodedFrame",
    "FeatureSpec",
    "Flavor",
    "FsspecArtifactStore",
    "InputKind",
    "InvalidValue",
    "KeySnapshot",
    "KeyStore",
    "LightGBMFlavor",
    "LoadedModel",
    "LocalArtifactStore",
    "ModelVersion",
    "Registry",
    "Release",
    "Runtime",
    "Signature",
    "SklearnFlavor",
    "TrafficState",
    "TrafficStore",
    "UsageStore",
    "ValueEncoder",
    "artifact_store_from_url",
    "column_kind",
    "encode_frame",
    "feature_frame",
    "flavor_for",
    "lightgbm_runtime",
    "loop_decisions",
    "loop_leases",
    "onnx_session",
    "parse_ref",
    "parse_time",
    "probe_rows",
    "secret_digest",
    "sha256_hex",
    "time_part",
    "time_parts",
]
