"""Data validation and release gates, each check with its numbers, in one GateReport."""

from __future__ import annotations

from driftloop.quality._drift import profile_psi
from driftloop.quality._leakage import single_feature_skill
from driftloop.quality._release import release_gates
from driftloop.quality._report import GateCheck, GateReport
from driftloop.quality._validation import quarantine, validate_features

__all__ = [
    "GateCheck",
    "GateReport",
    "profile_psi",
    "quarantine",
    "release_gates",
    "single_feature_skill",
    "validate_features",
]
