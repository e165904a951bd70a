"""Alembic migrations of the registry schema, shipped inside the package."""

from __future__ import annotations
