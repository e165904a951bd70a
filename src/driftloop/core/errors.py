"""Every error driftloop raises on purpose.

The tree (built-in bases in brackets, stable ``code`` after the colon)::

    DriftloopError: driftloop-error
    ├── ConfigError [ValueError]: config-invalid
    ├── InvalidParameterError [ValueError]: invalid-parameter
    ├── DataValidationError [ValueError]: data-invalid
    │   ├── SchemaMismatchError: schema-mismatch
    │   └── InsufficientDataError: insufficient-data
    ├── NotFoundError [LookupError]: not-found
    │   ├── UnknownFeatureError: unknown-feature
    │   ├── ModelNotFoundError: model-not-found
    │   └── AliasNotFoundError: alias-not-found
    ├── ConflictError: conflict
    │   └── IncompatibleChangeError: incompatible-change
    ├── ArtifactIntegrityError: artifact-integrity
    ├── GateFailedError: gate-failed
    └── BackendUnavailableError [ConnectionError]: backend-unavailable

Catch ``DriftloopError`` for anything driftloop refused; catch the built-in base where
the caller would anyway (``except ValueError`` around user input keeps working).

The ``code`` of an error is stable across releases: scripts and the HTTP layer rely on
it. Which HTTP status a code maps to is decided by ``driftloop.serving``, not here.

>>> try:
...     raise UnknownFeatureError("Feature 'amount_7d' is unknown. Known: amount_1d.")
... except LookupError as exc:
...     exc.code
'unknown-feature'
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AliasNotFoundError",
    "ArtifactIntegrityError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "DataValidationError",
    "DriftloopError",
    "GateFailedError",
    "IncompatibleChangeError",
    "InsufficientDataError",
    "InvalidParameterError",
    "ModelNotFoundError",
    "NotFoundError",
    "SchemaMismatchError",
    "UnknownFeatureError",
]


class DriftloopError(Exception):
    """Root of every error driftloop raises on purpose."""

    code: ClassVar[str] = "driftloop-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DriftloopError, ValueError):
    """A setting is missing, misspelled, of the wrong type or out of range."""

    code = "config-invalid"


class InvalidParameterError(DriftloopError, ValueError):
    """An argument passed to a driftloop function breaks its documented rule."""

    code = "invalid-parameter"


class DataValidationError(DriftloopError, ValueError):
    """Data (a frame, a request, a batch) fails a validation rule."""

    code = "data-invalid"


class SchemaMismatchError(DataValidationError):
    """Columns or types of some data do not match the declared schema."""

    code = "schema-mismatch"


class InsufficientDataError(DataValidationError):
    """There is too little data for a meaningful answer (a window, a split, a class)."""

    code = "insufficient-data"


class NotFoundError(DriftloopError, LookupError):
    """A named thing does not exist."""

    code = "not-found"


class UnknownFeatureError(NotFoundError):
    """A feature or feature view name is not defined."""

    code = "unknown-feature"


class ModelNotFoundError(NotFoundError):
    """A model name or version is not in the registry."""

    code = "model-not-found"


class AliasNotFoundError(NotFoundError):
    """An alias (``champion``, ``challenger``, ...) points at no version."""

    code = "alias-not-found"


class ConflictError(DriftloopError):
    """The request conflicts with the current state."""

    code = "conflict"


class IncompatibleChangeError(ConflictError):
    """A definition changes incompatibly something others depend on."""

    code = "incompatible-change"


class ArtifactIntegrityError(DriftloopError):
    """A stored artifact does not match its recorded content hash."""

    code = "artifact-integrity"


class GateFailedError(DriftloopError):
    """A data or release gate refused to let something through."""

    code = "gate-failed"


class BackendUnavailableError(DriftloopError, ConnectionError):
    """A backing service (Redis, PostgreSQL, object storage) cannot be reached in time."""

    code = "backend-unavailable"
