"""Reproducible example data: a card-transaction simulator with fraud and drift."""

from __future__ import annotations

from driftloop.data._fraud_project import FRAUD_MODEL_TOML, fraud_model_config
from driftloop.data._scenario import DRIFT_KINDS, DriftKind, Scenario
from driftloop.data._simulator import Simulation, expected_fraud_rates, simulate_transactions

__all__ = [
    "DRIFT_KINDS",
    "FRAUD_MODEL_TOML",
    "DriftKind",
    "Scenario",
    "Simulation",
    "expected_fraud_rates",
    "fraud_model_config",
    "simulate_transactions",
]
