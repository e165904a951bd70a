"""A served model's arms as its server routes them now: what the traffic page shows as
each arm's breaker state.

The states live in each server process (``GET /v1/models/NAME/traffic`` tells them), not
in a store: ``driftloop serve`` hands the dashboard it mounts an :data:`ArmStates` that
reads its own process's; the dashboard alone (``driftloop ui``) has none, and says the
states are unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ArmStates"]

# model name -> its arms as routed now (each with ``name``, ``version``, ``weight`` and
# ``breaker``: closed, open or half-open), or None when this process does not serve it
ArmStates = Callable[[str], Sequence[Mapping[str, Any]] | None]
