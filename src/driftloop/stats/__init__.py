"""Pure, vectorised statistics with no I/O, shared by gates, registry and monitoring."""

from __future__ import annotations

from driftloop.stats._profile import CategoricalProfile, NumericProfile, Profile

__all__ = ["CategoricalProfile", "NumericProfile", "Profile"]
