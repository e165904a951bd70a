"""The ``driftloop`` command line. Each part's commands live in their own module."""

from __future__ import annotations

from driftloop.cli import _data, _demo, _features, _project, _serve  # noqa: F401  (they register commands)
from driftloop.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``driftloop`` script."""
    app()
