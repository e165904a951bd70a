"""Alembic migrations of the monitoring tables (the ``monitoring`` branch)."""

from __future__ import annotations
