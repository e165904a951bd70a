"""Shared ground of every part: settings, errors and backend URLs."""

from __future__ import annotations

from driftloop.core.config import (
    AuditConfig,
    BatchingConfig,
    CacheConfig,
    FeaturesConfig,
    ProjectConfig,
    RegistryConfig,
    ServingConfig,
    Settings,
    load_settings,
)
from driftloop.core.errors import (
    AliasNotFoundError,
    ArtifactIntegrityError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DataValidationError,
    DriftloopError,
    GateFailedError,
    IncompatibleChangeError,
    InsufficientDataError,
    InvalidParameterError,
    ModelNotFoundError,
    NotFoundError,
    SchemaMismatchError,
    UnknownFeatureError,
)
from driftloop.core.urls import check_url, local_path, scheme_of

__all__ = [
    "AliasNotFoundError",
    "ArtifactIntegrityError",
    "AuditConfig",
    "BackendUnavailableError",
    "BatchingConfig",
    "CacheConfig",
    "ConfigError",
    "ConflictError",
    "DataValidationError",
    "DriftloopError",
    "FeaturesConfig",
    "GateFailedError",
    "IncompatibleChangeError",
    "InsufficientDataError",
    "InvalidParameterError",
    "ModelNotFoundError",
    "NotFoundError",
    "ProjectConfig",
    "RegistryConfig",
    "SchemaMismatchError",
    "ServingConfig",
    "Settings",
    "UnknownFeatureError",
    "check_url",
    "load_settings",
    "local_path",
    "scheme_of",
]
