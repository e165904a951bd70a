"""driftloop: the whole production ML loop in one ``pip install``.

Features, training, registry, gated release, serving, monitoring and retraining on one
machine with embedded defaults, moving to shared services by configuration.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
