"""Names, references and the conversion of registry rows to objects."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from driftloop.core.errors import InvalidParameterError
from driftloop.registry._signature import Signature
from driftloop.registry._types import ModelVersion

__all__ = ["check_name", "jsonable", "parse_ref", "utc", "version_of"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"fraud:3"`` -> ``("fraud", 3)``; ``"fraud"`` -> ``("fraud", None)``."""
    name, _, version = ref.partition(":")
    if not version:
        return name, None
    if not version.isdigit():
        raise InvalidParameterError(f"Model reference {ref!r}: version must be an integer.")
    return name, int(version)


def check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidParameterError(
            f"{kind} name {value!r} must be 1-200 characters of letters, digits, '_', '.', '-'."
        )
    return value


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def version_of(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        name=row.model_name,
        version=row.version,
        flavor=row.flavor,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        signature=Signature.from_json(row.signature),
        params=row.params,
        metrics=row.metrics,
        tags=row.tags,
        lineage=row.lineage,
        gate_report=row.gate_report,
        artifacts=row.artifacts,
    )
