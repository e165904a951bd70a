"""Shared helpers for training tests: a project folder whose latency gate is judged loosely."""

from __future__ import annotations

from pathlib import Path

from driftloop.core.config import Settings, load_settings


def project(tmp_path: Path, name: str = "proj") -> Settings:
    root = tmp_path / name
    root.mkdir()
    # The latency gate is measured, so a loaded machine could fail it: tests judge it loosely.
    return load_settings(root=root, environ={}, overrides={"gates.max_p99_latency_ms": 1e4})
