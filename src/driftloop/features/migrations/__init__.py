"""Alembic migrations of the features tables (the ``features`` branch)."""

from __future__ import annotations
