"""The ``driftloop`` command line. Each part's commands live in their own module."""

from __future__ import annotations

from driftloop.cli import (  # noqa: F401  (they register commands)
    _data,
    _demo,
    _features,
    _keys,
    _loop,
    _models,
    _monitor,
    _predictions,
    _project,
    _score,
    _serve,
    _traffic,
    _train,
    _ui,
)
from driftloop.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``driftloop`` script."""
    app()
