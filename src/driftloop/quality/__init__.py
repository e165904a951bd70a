"""Data validation and release gates, each check with its numbers, in one GateReport."""

from __future__ import annotations

from driftloop.quality._drift import profile_psi
from driftloop.quality._release import release_gates
from driftloop.quality._report import GateCheck, GateReport
from driftloop.quality._validation import column_kind, quarantine, validate_frame

__all__ = [
    "GateCheck",
    "GateReport",
    "column_kind",
    "profile_psi",
    "quarantine",
    "release_gates",
    "validate_frame",
]
