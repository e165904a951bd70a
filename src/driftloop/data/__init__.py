"""Reproducible example data: a card-transaction simulator with fraud and drift."""

from __future__ import annotations

from driftloop.data._scenario import DRIFT_KINDS, DriftKind, Scenario
from driftloop.data._simulator import Simulation, expected_fraud_rates, simulate_transactions

__all__ = [
    "DRIFT_KINDS",
    "DriftKind",
    "Scenario",
    "Simulation",
    "expected_fraud_rates",
    "simulate_transactions",
]
