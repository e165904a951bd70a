"""Where heavy offline work runs: in this process, or on a Ray cluster.

``[compute] engine = "local" | "ray"`` picks the engine (:func:`open_engine`); the
features, training and scoring jobs hand it their tasks through the :class:`Engine`
protocol. Importing this package never imports Ray (an extra:
``pip install 'driftloop[ray]'``).
"""

from __future__ import annotations

from driftloop.compute._engine import (
    BatchFunction,
    BatchSource,
    Engine,
    LocalEngine,
    batch_source,
    write_parts,
)
from driftloop.compute._open import open_engine
from driftloop.compute._ray import RayEngine, import_ray

__all__ = [
    "BatchFunction",
    "BatchSource",
    "Engine",
    "LocalEngine",
    "RayEngine",
    "batch_source",
    "import_ray",
    "open_engine",
    "write_parts",
]
