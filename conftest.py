"""Doctests of src/: the recommender's modules need the recsys extra (PyTorch, hnswlib,
implicit); without it they are not collected (tests/unit/recsys skips with the reason)."""

from __future__ import annotations

import importlib.util

collect_ignore_glob = (
    []
    if all(importlib.util.find_spec(m) for m in ("torch", "hnswlib", "implicit"))
    else ["src/driftloop/recsys/*"]
)
