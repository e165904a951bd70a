"""The engine the settings name (``[compute]``)."""

from __future__ import annotations

from driftloop.compute._engine import Engine, LocalEngine
from driftloop.compute._ray import RayEngine
from driftloop.core.config import ComputeConfig

__all__ = ["open_engine"]


def open_engine(config: ComputeConfig) -> Engine:
    """``LocalEngine`` for ``engine = "local"``, ``RayEngine`` at ``address`` for ``"ray"``
    (which connects on first use, so building it needs no cluster).

    >>> open_engine(ComputeConfig()).name
    'local'
    >>> open_engine(ComputeConfig(engine="ray", address="ray://head:10001")).name
    'ray'
    """
    if config.engine == "ray":
        return RayEngine(config.address, num_cpus=config.num_cpus, max_retries=config.max_retries)
    return LocalEngine()
