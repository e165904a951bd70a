"""Alembic environment of the features branch: runs on the connection handed over."""

from __future__ import annotations

from driftloop.core.migrations import run_env

run_env()
