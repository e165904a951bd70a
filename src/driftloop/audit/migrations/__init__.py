"""Alembic migrations of the audit log's tables (the ``audit`` branch)."""

from __future__ import annotations
